import type { AgentEvent } from '@agenttrace/contract';
import type { SessionReadResult } from '@agenttrace/sessions';
import type { SessionStats } from './summary.js';

/** Identifies the --json document layout; bumped only on incompatible changes. */
export const REPLAY_JSON_FORMAT = 'kshark.replay.v1';

/**
 * The --json document: stable field names, events exactly as contract v1 defines them (with
 * offloaded fields restored inline), in the session's canonical Kafka offset order.
 */
export interface ReplayJson {
  format: typeof REPLAY_JSON_FORMAT;
  session_id: string;
  source: SessionReadResult['source'];
  partition: number | null;
  /** Events in the session (within --from/--to) before --type/--agent/--grep. */
  total_events: number;
  warnings: string[];
  summary: SessionStats;
  events: AgentEvent[];
}

// JSON.stringify escapes C0 controls but leaves DEL, C1 controls and bidi/zero-width format
// characters raw; escaping them too keeps the output identical as data and harmless on a terminal.
 
const RAW_UNSAFE = /[\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** JSON text with every terminal-affecting character written as a \u escape. */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(RAW_UNSAFE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function replayJson(result: SessionReadResult, stats: SessionStats, shown: AgentEvent[]): ReplayJson {
  return {
    format: REPLAY_JSON_FORMAT,
    session_id: result.sessionId,
    source: result.source,
    partition: result.partition ?? null,
    total_events: result.events.length,
    warnings: result.warnings,
    summary: stats,
    events: shown,
  };
}
