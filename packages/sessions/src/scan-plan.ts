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
 * [start, high). With the session's index (of this very topic, by topic id) and a group's
 * coverage, no record of the session lies in (lastOffset, position) where the group applied
 * every record: those are skipped. A session that ended long ago is then read from its own
 * offsets plus the tail the dashboard has not applied yet, not up to the end of the partition.
 */
export function planScan(p: { start: number; high: number; lastIndexed?: number; coverage: readonly Coverage[] }): OffsetRange[] {
  const whole = p.start < p.high ? [{ start: p.start, end: p.high }] : [];
  if (p.lastIndexed === undefined) return whole;
  let gap: OffsetRange | undefined;
  for (const c of p.coverage) {
    const start = Math.max(p.lastIndexed + 1, c.since, p.start);
    const end = Math.min(c.position, p.high);
    if (end > start && (!gap || end - start > gap.end - gap.start)) gap = { start, end };
  }
  if (!gap) return whole;
  const out: OffsetRange[] = [];
  if (gap.start > p.start) out.push({ start: p.start, end: gap.start });
  if (p.high > gap.end) out.push({ start: gap.end, end: p.high });
  return out;
}
