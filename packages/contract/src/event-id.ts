import { monotonicFactory } from 'ulid';

const ulid = monotonicFactory();

/** A new unique, time-ordered event id (`evt_` + ULID; monotonic within one process). */
export function newEventId(now: number = Date.now()): string {
  return `evt_${ulid(now)}`;
}

/** Milliseconds since the epoch encoded in an event id, or undefined if it is not one. */
export function eventIdTime(eventId: string): number | undefined {
  const m = /^evt_([0-9A-HJKMNP-TV-Z]{10})[0-9A-HJKMNP-TV-Z]{16}$/.exec(eventId);
  if (!m) return undefined;
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let t = 0;
  for (const ch of m[1]!) t = t * 32 + alphabet.indexOf(ch);
  return t;
}
