import { OptionsError } from '@agenttrace/common';
import { EVENT_TYPES, type EventType } from '@agenttrace/contract';

/** How a replay is filtered and rendered. */
export interface ReplayOptions {
  /** Keep only these event types. */
  types?: EventType[];
  /** Keep only events of these agents. */
  agents?: string[];
  /** Keep only events whose JSON matches this pattern (case-insensitive). */
  grep?: RegExp;
  /** Show inputs and outputs in full, pretty-printed, instead of one truncated line. */
  full?: boolean;
  /** Characters of an input/output shown on its line when not --full. */
  truncateAt?: number;
  /** Terminal width used to cut lines when not --full (0 = do not cut). */
  width?: number;
  /** ANSI colors (only on a TTY and without NO_COLOR, unless forced). */
  color?: boolean;
}

export type ResolvedReplayOptions = Required<Omit<ReplayOptions, 'types' | 'agents' | 'grep'>> & Pick<ReplayOptions, 'types' | 'agents' | 'grep'>;

export const REPLAY_DEFAULTS = {
  full: false,
  truncateAt: 160,
  width: 0,
  color: false,
} as const;

export function resolveReplayOptions(o: ReplayOptions = {}): ResolvedReplayOptions {
  const out: ResolvedReplayOptions = { ...REPLAY_DEFAULTS };
  if (o.types !== undefined) {
    for (const t of o.types) {
      if (!(EVENT_TYPES as readonly string[]).includes(t)) throw new OptionsError('--type', `has "${t}"; event types are ${EVENT_TYPES.join(', ')}`);
    }
    out.types = o.types;
  }
  if (o.agents !== undefined) out.agents = o.agents;
  if (o.grep !== undefined) out.grep = o.grep;
  if (o.full !== undefined) out.full = o.full;
  if (o.truncateAt !== undefined) {
    if (!Number.isInteger(o.truncateAt) || o.truncateAt < 10) throw new OptionsError('truncateAt', 'must be an integer >= 10');
    out.truncateAt = o.truncateAt;
  }
  if (o.width !== undefined) {
    if (!Number.isInteger(o.width) || o.width < 0) throw new OptionsError('width', 'must be a non-negative integer');
    out.width = o.width;
  }
  if (o.color !== undefined) out.color = o.color;
  return out;
}

/** Parses a comma-separated flag value into a list. */
export function listFlag(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  return list.length > 0 ? list : undefined;
}

/** A --grep pattern: a regular expression, case-insensitive; a bad one is a usage error. */
export function grepFlag(value: string | undefined): RegExp | undefined {
  if (value === undefined) return undefined;
  try {
    return new RegExp(value, 'i');
  } catch (err) {
    throw new OptionsError('--grep', `is not a valid regular expression: ${(err as Error).message}`);
  }
}
