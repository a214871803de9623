/** Offsets [start, end) of one partition. */
export interface OffsetRange {
  start: number;
  end: number;
}

/**
 * What one dashboard consumer group vouches for on a partition: every record in [since, position)
 * was applied, each in the same atomic step that raised its session's Kafka index (the `since:`
 * fields of the group's offsets owner, and its stored offsets).
 */
export interface Coverage {
  since: number;
  position: number;
}

/**
 * The offset ranges a Kafka read of one session must scan. Without more knowledge that is
 * [start, high). With the session's index (of this very topic, by topic id: `lastIndexed` is then
 * set) two kinds of ranges hold no record of the session and are skipped:
 * - after its last indexed offset, below a group's position, where that group applied every
 *   record (coverage): a session that ended long ago is read from its own offsets plus the tail the
 *   dashboard has not applied yet, not up to the end of the partition;
 * - the index's gaps: long runs of other sessions' records between two of its own, as a
 *   long-running session interleaved with busier ones has.
 */
export function planScan(p: { start: number; high: number; lastIndexed?: number; coverage: readonly Coverage[]; gaps?: readonly OffsetRange[] }): OffsetRange[] {
  const whole = p.start < p.high ? [{ start: p.start, end: p.high }] : [];
  if (p.lastIndexed === undefined) return whole;
  const skips: OffsetRange[] = [];
  for (const g of p.gaps ?? []) if (g.end <= p.lastIndexed) skips.push(g);
  // The largest tail after the last indexed offset that one group applied whole.
  let applied: OffsetRange | undefined;
  for (const c of p.coverage) {
    const start = Math.max(p.lastIndexed + 1, c.since, p.start);
    const end = Math.min(c.position, p.high);
    if (end > start && (!applied || end - start > applied.end - applied.start)) applied = { start, end };
  }
  if (applied) skips.push(applied);
  let out = whole;
  for (const skip of skips) out = out.flatMap((r) => subtract(r, skip));
  return out;
}

/** What is left of r once the offsets of skip are taken out (zero, one or two ranges). */
function subtract(r: OffsetRange, skip: OffsetRange): OffsetRange[] {
  if (skip.end <= r.start || skip.start >= r.end) return [r];
  const out: OffsetRange[] = [];
  if (skip.start > r.start) out.push({ start: r.start, end: skip.start });
  if (skip.end < r.end) out.push({ start: skip.end, end: r.end });
  return out;
}
