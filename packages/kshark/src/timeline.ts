import type { AgentEvent } from '@agenttrace/contract';

/** One line of the replay: an event, where it sits in the sub-agent tree, and its time offset. */
export interface TimelineRow {
  event: AgentEvent;
  /** Position in the session's canonical (Kafka offset) order. */
  index: number;
  /** Number of ancestors through context.parent_event_id that are in the session. */
  depth: number;
  /** Milliseconds since the session's first event. */
  offsetMs: number;
  /** Set when the event names a parent that is not part of what was read. */
  missingParent?: string;
  /** True for the last child of its parent (for tree guides). */
  lastChild: boolean;
}

const parentOf = (e: AgentEvent): string | undefined => {
  const p = e.context?.parent_event_id;
  return typeof p === 'string' && p !== '' ? p : undefined;
};

/**
 * Orders events as a call tree. A delegation event is emitted when the delegated work finishes,
 * so it appears in the stream after its children; here it is placed before them, as the head of
 * its subtree. Siblings keep the order in which their subtree first appears in the stream, so
 * a session without delegations keeps its offset order exactly. Cycles and missing parents
 * cannot break it: such events become roots.
 */
export function buildTimeline(events: AgentEvent[]): TimelineRow[] {
  const byId = new Map<string, number>();
  events.forEach((e, i) => {
    if (!byId.has(e.event_id)) byId.set(e.event_id, i);
  });
  const children = new Map<number, number[]>();
  const roots: number[] = [];
  const missing = new Map<number, string>();
  const parentIdx: Array<number | undefined> = events.map((e, i) => {
    const pid = parentOf(e);
    if (pid === undefined) return undefined;
    const p = byId.get(pid);
    if (p === undefined) {
      missing.set(i, pid);
      return undefined;
    }
    return p === i ? undefined : p;
  });
  // Break cycles (hostile or corrupt data): walk up; if we return to the start, cut the link.
  for (let i = 0; i < events.length; i++) {
    let cur = parentIdx[i];
    let steps = 0;
    while (cur !== undefined && steps <= events.length) {
      if (cur === i) {
        parentIdx[i] = undefined;
        break;
      }
      cur = parentIdx[cur];
      steps++;
    }
  }
  for (let i = 0; i < events.length; i++) {
    const p = parentIdx[i];
    if (p === undefined) roots.push(i);
    else {
      const list = children.get(p);
      if (list) list.push(i);
      else children.set(p, [i]);
    }
  }
  // First stream position of each subtree, computed bottom-up without recursion.
  const first = events.map((_, i) => i);
  for (let i = events.length - 1; i >= 0; i--) {
    let cur = i;
    let p = parentIdx[cur];
    let guard = 0;
    while (p !== undefined && guard++ <= events.length) {
      if (first[i]! < first[p]!) first[p] = first[i]!;
      else break;
      cur = p;
      p = parentIdx[cur];
    }
  }
  const byFirst = (a: number, b: number) => first[a]! - first[b]! || a - b;
  roots.sort(byFirst);
  for (const list of children.values()) list.sort(byFirst);

  const t0 = events.reduce((min, e) => Math.min(min, Date.parse(e.timestamp)), Number.POSITIVE_INFINITY);
  const rows: TimelineRow[] = [];
  const stack: Array<{ i: number; depth: number; last: boolean }> = [];
  for (let r = roots.length - 1; r >= 0; r--) stack.push({ i: roots[r]!, depth: 0, last: r === roots.length - 1 });
  while (stack.length > 0) {
    const { i, depth, last } = stack.pop()!;
    const e = events[i]!;
    const row: TimelineRow = { event: e, index: i, depth, offsetMs: Number.isFinite(t0) ? Date.parse(e.timestamp) - t0 : 0, lastChild: last };
    const m = missing.get(i);
    if (m) row.missingParent = m;
    rows.push(row);
    const kids = children.get(i) ?? [];
    for (let k = kids.length - 1; k >= 0; k--) stack.push({ i: kids[k]!, depth: depth + 1, last: k === kids.length - 1 });
  }
  return rows;
}
