import { OptionsError } from './errors.js';

/**
 * Parsers of flag, environment and config values shared by every command, so that "5m" or
 * "0" mean the same everywhere. They throw OptionsError naming the flag; a CLI turns that into
 * its parser's error (commander's InvalidArgumentError) or a usage error (exit 2).
 */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export interface NumberRule {
  /** Whether 0 means something for this value (e.g. "never", "any free port", "main thread"). Default false. */
  zero?: boolean;
  /** Largest value accepted. */
  max?: number;
}

/** A duration: 500ms, 10s, 1.5m, 2h or plain milliseconds. 0 only where `zero` says it means something. */
export function parseDurationMs(value: string, what: string, rule: NumberRule = {}): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(value).trim());
  if (!m) throw new OptionsError(what, `must be a duration like 500ms, 10s, 1.5m, 2h or a number of ms, got "${value}"`);
  const ms = Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
  if (ms === 0 && rule.zero !== true) throw new OptionsError(what, `must be more than 0, got "${value}"`);
  if (rule.max !== undefined && ms > rule.max) throw new OptionsError(what, `must be at most ${rule.max} ms, got "${value}"`);
  return ms;
}

/** A whole number; 0 only where `zero` says it means something. */
export function parseCount(value: string, what: string, rule: NumberRule = {}): number {
  const text = String(value).trim();
  const n = Number(text);
  const min = rule.zero === true ? 0 : 1;
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || (rule.max !== undefined && n > rule.max)) {
    const range = rule.max !== undefined ? `from ${min} to ${rule.max}` : min === 0 ? '0 or more' : '1 or more';
    throw new OptionsError(what, `must be a whole number ${range}, got "${value}"`);
  }
  return n;
}
