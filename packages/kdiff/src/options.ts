import { OptionsError } from '@agenttrace/common';
import { EVENT_TYPES, type EventType } from '@agenttrace/contract';
import { parsePathPattern, type PathPattern } from './paths.js';

/**
 * Fields that differ between any two runs of the same agent and say nothing about what it did:
 * ids, clocks, per-emitter counters, and the measured figures kdiff reports as deltas instead
 * (latency, cost, tokens). Stack traces change with every deploy. `defaultIgnore: false` compares them too.
 */
export const DEFAULT_IGNORES: readonly string[] = Object.freeze([
  'schema_version',
  'event_id',
  'session_id',
  'emitter_id',
  'seq',
  'timestamp',
  'offload',
  'context.parent_event_id',
  'payload.latency_ms',
  'payload.cost_usd',
  'payload.input_tokens',
  'payload.output_tokens',
  'payload.error.stack',
]);

/** How two sessions (or a session and its expected steps) are compared. */
export interface CompareOptions {
  /** More fields to leave out of the comparison, as dotted paths (`payload.output.request_id`, `*`, `**`). */
  ignore?: string[];
  /** Also leave out DEFAULT_IGNORES (default true). */
  defaultIgnore?: boolean;
  /** Compare only events of these types. */
  types?: EventType[];
  /** Compare only events of these agents (sub-agents have their own agent_id). */
  agents?: string[];
  /** Matching steps shown before the first divergence and around each change (default 3). */
  context?: number;
  /**
   * Give up the exact (Myers) alignment when the sessions need more than this many inserted and
   * removed steps, and align on steps that occur once in each session instead (default 2000).
   * Bounds the time of comparing two sessions that have little in common.
   */
  maxEditLength?: number;
  /** Field changes kept per step; the rest are counted (default 50). */
  maxFieldChanges?: number;
}

export interface ResolvedCompareOptions {
  ignore: string[];
  defaultIgnore: boolean;
  /** The parsed patterns actually applied (defaults + ignore). */
  patterns: PathPattern[];
  types: EventType[] | undefined;
  agents: string[] | undefined;
  context: number;
  maxEditLength: number;
  maxFieldChanges: number;
}

export const COMPARE_DEFAULTS = {
  defaultIgnore: true,
  context: 3,
  maxEditLength: 2000,
  maxFieldChanges: 50,
} as const;

function intAtLeast(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new OptionsError(name, `must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Applies defaults and validates; throws OptionsError naming the option. */
export function resolveCompareOptions(o: CompareOptions = {}): ResolvedCompareOptions {
  const ignore = o.ignore ?? [];
  if (!Array.isArray(ignore) || ignore.some((p) => typeof p !== 'string')) throw new OptionsError('ignore', 'must be a list of dotted paths');
  const defaultIgnore = o.defaultIgnore ?? COMPARE_DEFAULTS.defaultIgnore;
  const patterns = [...(defaultIgnore ? DEFAULT_IGNORES : []), ...ignore].map((p) => parsePathPattern(p, 'ignore'));
  let types: EventType[] | undefined;
  if (o.types !== undefined) {
    for (const t of o.types) {
      if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new OptionsError('type', `has "${String(t)}"; event types are ${EVENT_TYPES.join(', ')}`);
    }
    types = [...o.types];
  }
  let agents: string[] | undefined;
  if (o.agents !== undefined) {
    if (o.agents.some((a) => typeof a !== 'string' || a === '')) throw new OptionsError('agent', 'must be non-empty agent ids');
    agents = [...o.agents];
  }
  return {
    ignore: [...ignore],
    defaultIgnore,
    patterns,
    types,
    agents,
    context: o.context === undefined ? COMPARE_DEFAULTS.context : intAtLeast('context', o.context, 0),
    maxEditLength: o.maxEditLength === undefined ? COMPARE_DEFAULTS.maxEditLength : intAtLeast('maxEditLength', o.maxEditLength, 1),
    maxFieldChanges: o.maxFieldChanges === undefined ? COMPARE_DEFAULTS.maxFieldChanges : intAtLeast('maxFieldChanges', o.maxFieldChanges, 1),
  };
}
