/**
 * What the interactive replay lists: the timeline's rows, with each retry loop (one tool called
 * back to back by one agent, many times) folded into a single item that opens into its calls.
 * Pure, so the folding is tested without a terminal.
 */
import { LOOP_MAX_MEDIAN_GAP_MS } from './summary.js';
import type { TimelineRow } from './timeline.js';

/** This many consecutive calls of one tool or more are folded into one item. */
export const FOLD_MIN_CALLS = 3;

/** A run of consecutive timeline rows calling one tool. */
export interface LoopRun {
  /** First and last row (indexes into the rows), inclusive. */
  from: number;
  to: number;
  tool: string;
  agentId: string;
  calls: number;
  failed: number;
  /** Median time between the starts of two consecutive calls. */
  medianGapMs: number;
  /** False when the median gap is at most LOOP_MAX_MEDIAN_GAP_MS (the replay summary's rule). */
  backoff: boolean;
}

export type ViewItem = { kind: 'row'; row: number; inLoop: boolean } | { kind: 'loop'; loop: LoopRun; open: boolean };

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs of at least `min` consecutive rows that call the same tool, by the same agent, at the same depth. */
export function findLoopRuns(rows: readonly TimelineRow[], min = FOLD_MIN_CALLS): LoopRun[] {
  const out: LoopRun[] = [];
  const same = (a: TimelineRow, b: TimelineRow): boolean =>
    a.event.event_type === 'tool_call' && b.event.event_type === 'tool_call' && a.event.payload?.tool === b.event.payload?.tool && a.event.agent_id === b.event.agent_id && a.depth === b.depth;
  let i = 0;
  while (i < rows.length) {
    let j = i + 1;
    while (j < rows.length && same(rows[i]!, rows[j]!)) j++;
    if (j - i >= min && rows[i]!.event.event_type === 'tool_call') {
      const times = rows.slice(i, j).map((r) => Date.parse(r.event.timestamp));
      const gap = median(times.slice(1).map((t, k) => t - times[k]!));
      let failed = 0;
      for (let k = i; k < j; k++) if (rows[k]!.event.status === 'error') failed++;
      out.push({ from: i, to: j - 1, tool: String(rows[i]!.event.payload?.tool ?? '?'), agentId: rows[i]!.event.agent_id, calls: j - i, failed, medianGapMs: gap, backoff: gap > LOOP_MAX_MEDIAN_GAP_MS });
    }
    i = j;
  }
  return out;
}

/** The list shown: rows, with every loop not in `open` as one item (an open loop lists its calls under it). */
export function viewItems(rows: readonly TimelineRow[], loops: readonly LoopRun[], open: ReadonlySet<number>): ViewItem[] {
  const items: ViewItem[] = [];
  let next = 0;
  for (const loop of loops) {
    for (; next < loop.from; next++) items.push({ kind: 'row', row: next, inLoop: false });
    const isOpen = open.has(loop.from);
    items.push({ kind: 'loop', loop, open: isOpen });
    if (isOpen) for (let k = loop.from; k <= loop.to; k++) items.push({ kind: 'row', row: k, inLoop: true });
    next = loop.to + 1;
  }
  for (; next < rows.length; next++) items.push({ kind: 'row', row: next, inLoop: false });
  return items;
}
