/**
 * The session waterfall's model, without the DOM: events in tree order (a sub-agent's steps
 * under the delegation that started them), with retry loops folded. Pure, so it is unit-tested.
 */
import type { AgentEvent } from './api.js';

export interface Row {
  /** Stable across rebuilds: the first event's id (a fold keeps its first attempt's id). */
  key: string;
  events: AgentEvent[];
  /** The event shown in the detail panel (a fold shows its last attempt). */
  main: AgentEvent;
  depth: number;
  /** >1 for a folded loop. */
  count: number;
  failures: number;
  /** Folded loop currently shown as one row. */
  folded: boolean;
  /** One attempt of an unfolded loop. */
  member: boolean;
  isError: boolean;
  label: string;
  /** Start relative to the session's first event (ms), and duration when measured. */
  startMs: number;
  latencyMs: number | undefined;
  costUsd: number | undefined;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function isErrorEvent(e: AgentEvent): boolean {
  return e.status === 'error' || e.event_type === 'error';
}

export function labelOf(e: AgentEvent): string {
  const p = e.payload ?? {};
  switch (e.event_type) {
    case 'tool_call':
      return str(p.tool) ?? 'tool';
    case 'llm_call':
      return str(p.model) ?? 'llm';
    case 'decision':
      return str(p.action) ?? 'decision';
    case 'delegation':
      return `→ ${str(p.subagent_id) ?? 'sub-agent'}`;
    case 'custom':
      return str(p.name) ?? 'custom';
    case 'error': {
      const err = p.error as { name?: unknown; message?: unknown } | undefined;
      return [str(err?.name), str(err?.message)].filter(Boolean).join(': ') || 'error';
    }
    default:
      return e.event_type;
  }
}

/** An event's timestamp is when its work started (the tracer stamps the start); latency_ms is how long it took. */
function startOf(e: AgentEvent): number {
  return Date.parse(e.timestamp);
}

function endOf(e: AgentEvent): number {
  return startOf(e) + (num(e.payload?.latency_ms) ?? 0);
}

/** Events in tree order with their depth: children follow the event named by context.parent_event_id. */
export function treeOrder(events: readonly AgentEvent[]): Array<{ e: AgentEvent; depth: number }> {
  const ids = new Set(events.map((e) => e.event_id));
  const children = new Map<string, AgentEvent[]>();
  const roots: AgentEvent[] = [];
  for (const e of events) {
    const parent = e.context?.parent_event_id;
    if (typeof parent === 'string' && parent !== e.event_id && ids.has(parent)) {
      let list = children.get(parent);
      if (!list) children.set(parent, (list = []));
      list.push(e);
    } else roots.push(e);
  }
  const out: Array<{ e: AgentEvent; depth: number }> = [];
  const seen = new Set<string>();
  // Iterative, so a deep or cyclic parent chain cannot overflow the stack.
  const stack: Array<{ e: AgentEvent; depth: number }> = roots.map((e) => ({ e, depth: 0 })).reverse();
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (seen.has(item.e.event_id)) continue;
    seen.add(item.e.event_id);
    out.push(item);
    const kids = children.get(item.e.event_id);
    if (kids) for (let i = kids.length - 1; i >= 0; i--) stack.push({ e: kids[i]!, depth: item.depth + 1 });
  }
  // Events on a parent cycle are never reached from a root; show them at the top level.
  if (out.length < events.length) for (const e of events) if (!seen.has(e.event_id)) out.push({ e, depth: 0 });
  return out;
}

/** Two tool calls are attempts of one loop when the same agent calls the same tool under the same parent. */
function loopKey(e: AgentEvent): string | undefined {
  if (e.event_type !== 'tool_call') return undefined;
  return JSON.stringify([e.agent_id, str(e.payload?.tool) ?? '', e.context?.parent_event_id ?? '']);
}

export interface BuildOptions {
  /** Keys of folds the user opened. */
  unfolded?: ReadonlySet<string>;
}

export function buildRows(events: readonly AgentEvent[], options: BuildOptions = {}): { rows: Row[]; t0: number; t1: number } {
  const ordered = treeOrder(events);
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const e of events) {
    const s = startOf(e);
    const t = endOf(e);
    if (Number.isFinite(s)) t0 = Math.min(t0, s);
    if (Number.isFinite(t)) t1 = Math.max(t1, t);
  }
  if (!Number.isFinite(t0)) t0 = 0;
  if (!Number.isFinite(t1)) t1 = t0;
  const rows: Row[] = [];
  const single = (e: AgentEvent, depth: number, member: boolean): Row => ({
    key: e.event_id,
    events: [e],
    main: e,
    depth,
    count: 1,
    failures: isErrorEvent(e) ? 1 : 0,
    folded: false,
    member,
    isError: isErrorEvent(e),
    label: labelOf(e),
    startMs: Math.max(0, startOf(e) - t0),
    latencyMs: num(e.payload?.latency_ms),
    costUsd: num(e.payload?.cost_usd),
  });
  let i = 0;
  while (i < ordered.length) {
    const { e, depth } = ordered[i]!;
    const key = loopKey(e);
    let j = i + 1;
    if (key !== undefined) while (j < ordered.length && ordered[j]!.depth === depth && loopKey(ordered[j]!.e) === key) j++;
    if (j - i < 2) {
      rows.push(single(e, depth, false));
      i++;
      continue;
    }
    const group = ordered.slice(i, j).map((x) => x.e);
    const failures = group.filter(isErrorEvent).length;
    const first = group[0]!;
    const last = group[group.length - 1]!;
    const startMs = Math.max(0, startOf(first) - t0);
    let endMs = -Infinity;
    for (const g of group) endMs = Math.max(endMs, endOf(g) - t0);
    let cost: number | undefined;
    for (const g of group) {
      const c = num(g.payload?.cost_usd);
      if (c !== undefined) cost = (cost ?? 0) + c;
    }
    const open = options.unfolded?.has(first.event_id) === true;
    rows.push({
      key: first.event_id,
      events: group,
      main: last,
      depth,
      count: group.length,
      failures,
      folded: !open,
      member: false,
      isError: failures > 0,
      label: labelOf(first),
      startMs,
      latencyMs: Number.isFinite(endMs) ? Math.max(0, endMs - startMs) : undefined,
      costUsd: cost,
    });
    if (open) for (const g of group) rows.push(single(g, depth + 1, true));
    i = j;
  }
  return { rows, t0, t1 };
}

/** The next (dir 1) or previous (dir -1) error row after `from`, wrapping around; -1 when none. */
export function nextError(rows: readonly Row[], from: number, dir: 1 | -1): number {
  const n = rows.length;
  for (let k = 1; k <= n; k++) {
    const i = (((from + dir * k) % n) + n) % n;
    if (rows[i]!.isError) return i;
  }
  return -1;
}
