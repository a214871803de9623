import type { AgentEvent } from '@agenttrace/contract';
import type { SessionSourceName } from './errors.js';
import type { ListSessionsOptions, SessionSummary } from './list.js';

export interface ReadSessionOptions {
  /** Which source to read; `auto` (default) tries Redis, then Kafka, then the archive. */
  source?: 'auto' | SessionSourceName;
  /** Keep events whose timestamp is at or after this (epoch ms). */
  from?: number;
  /** Keep events whose timestamp is at or before this (epoch ms). */
  to?: number;
  /** Fetch offloaded payloads back from S3 (default true). */
  restoreOffloads?: boolean;
}

/** Where a read ended, so follow() can continue exactly after it (no gap, no duplicate). */
export interface SessionCursor {
  source: SessionSourceName;
  topic: string;
  partition?: number;
  /** Kafka: the next offset of the session's partition to read. */
  nextOffset?: number;
  /** Redis: how many entries of the session's event list were read. */
  redisIndex?: number;
}

export interface SessionReadResult {
  sessionId: string;
  /** The session's events in its canonical (Kafka offset) order. */
  events: AgentEvent[];
  source: SessionSourceName;
  partition?: number;
  /** Gaps/duplicates in seq per emitter, offload fetch failures, skipped sources, cut scans. */
  warnings: string[];
  /** Continue here with follow(). */
  cursor: SessionCursor;
}

/** What one source answered to a read: the session, or why it does not hold it. */
export type SourceAttempt = { kind: 'found'; result: SessionReadResult } | { kind: 'missing'; detail: string };

/** Where a follower starts. */
export interface FollowStart {
  /** The cursor follow() was given (a read's end), if any. */
  cursor?: SessionCursor;
  /** Set when the previous follower handed over: the Kafka offset to continue at (undefined: the current end). */
  handoff?: { nextOffset: number | undefined };
}

/** How a follower ended: the signal aborted, or it hands over to the next follower from this offset. */
export type FollowEnd = 'done' | { nextOffset: number | undefined };

/**
 * One place a session can be read from. The reader keeps its sources in a fixed order (Redis,
 * Kafka, archive) and asks them in turn; what differs between places lives behind this interface.
 * follow and list are optional: the archive only holds the past.
 */
export interface SessionSource {
  readonly name: SessionSourceName;
  /**
   * The source this one mirrors, if any: when that source answered, an outage of this one cannot
   * hide a session (Redis only mirrors Kafka).
   */
  readonly mirrorOf?: SessionSourceName;
  /** A safe description of where the source is (no credentials). */
  describe(): string;
  /**
   * The session's events, untrimmed (the reader applies the time range, the cap and the offload
   * restore). `forced`: this source was asked for by name, not as one step of `auto`.
   * Throws SourceUnavailableError when the source cannot be reached.
   */
  read(sessionId: string, options: ReadSessionOptions, forced: boolean): Promise<SourceAttempt>;
  /** Delivers the session's new events until `signal` aborts, or hands over to the next follower. */
  follow?(sessionId: string, deliver: (events: AgentEvent[]) => Promise<void>, signal: AbortSignal, start: FollowStart, warn: (message: string) => void): Promise<FollowEnd>;
  /**
   * Recent sessions, filtered, sorted and cut by `options`; undefined when the source holds no
   * listing and another source should answer. `forced` as for read.
   */
  list?(options: ListSessionsOptions, forced: boolean): Promise<SessionSummary[] | undefined>;
}

/** Parses a stored event text; the dashboard consumer (or the contract parser) validated it before. */
export function parseStored(text: string): AgentEvent | undefined {
  try {
    const v = JSON.parse(text) as AgentEvent;
    return typeof v === 'object' && v !== null && typeof v.session_id === 'string' && typeof v.event_id === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export function inRange(e: AgentEvent, from: number | undefined, to: number | undefined): boolean {
  if (from === undefined && to === undefined) return true;
  const t = Date.parse(e.timestamp);
  return (from === undefined || t >= from) && (to === undefined || t <= to);
}
