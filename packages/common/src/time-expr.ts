import { AgentTraceError } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parses a time expression as users type it on the command line: ISO-8601 (`2026-01-15T14:00:00Z`,
 * `2026-01-15`), epoch milliseconds, `now`, or relative to now (`-2h`, `30m`, `-1d12h`, `90s`).
 * Relative durations always point into the past. Returns epoch milliseconds.
 */
export function parseTimeExpression(expr: string, now: number = Date.now(), what = 'time'): number {
  const text = expr.trim();
  if (text === 'now') return now;
  const rel = /^-?((?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+)$/.exec(text);
  if (rel) {
    let total = 0;
    for (const part of rel[1]!.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) total += Number(part[1]) * UNITS[part[2]!]!;
    return now - total;
  }
  if (/^\d{12,14}$/.test(text)) return Number(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isNaN(t)) return t;
  }
  throw new AgentTraceError(
    'BAD_TIME',
    `cannot read ${what} "${expr}": use ISO-8601 (2026-01-15T14:00:00Z), epoch milliseconds, "now", or a relative time like -2h, 30m, 1d12h`,
  );
}
