import { costOf, type AgentEvent, type PriceTable } from '@agenttrace/contract';
import type { RedisKeys } from '@agenttrace/common';
import type { ResolvedAlertRules } from './options.js';

/** A consumed record that passed validation, ready to be applied. */
export interface GoodRecord {
  partition: number;
  offset: number;
  /** The record value exactly as received: readers get these bytes back. */
  value: Buffer;
  event: AgentEvent;
}

/** A consumed record that went to the dead-letter topic: it only moves the offset. */
export interface SkippedRecord {
  partition: number;
  offset: number;
}

/** Everything the apply script needs for one batch: keys, a header and the event texts. */
export interface ApplyPlan {
  keys: string[];
  args: Array<string | Buffer>;
  /** Per partition: first offset in the batch and the next offset after it. */
  parts: Array<[number, number, number]>;
  /** Sessions in the plan, in the order the script handles them. */
  sessions: string[];
  eventCount: number;
}

/** A token count from an event payload (0 when absent or not a number). */
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export interface PlanContext {
  keys: RedisKeys;
  topic: string;
  group: string;
  ttlSeconds: number;
  rules: ResolvedAlertRules | false;
  recentAlerts: number;
  now: number;
  /** Prices for LLM calls recorded with tokens but no cost (none: only the costs events carry). */
  prices?: PriceTable | false;
  /** Cluster id and topic id the offsets must belong to; the script refuses to write otherwise. */
  owner?: { clusterId: string; topicId: string };
}

/** The extra per-session key holding recent error times for the error-burst rule. */
export function recentErrorsKey(prefix: string, sessionId: string): string {
  return `${prefix}session:{${sessionId}}:recent-errors`;
}

/** HASH alert_id -> alert JSON of alerts decided but not yet delivered everywhere. */
export function alertsOutboxKey(prefix: string): string {
  return `${prefix}alerts:outbox`;
}

const MAX_STEP = 200;

/** A short description of what a session is doing, for the meta hash's current_step. */
export function describeStep(e: AgentEvent): string {
  const p = e.payload;
  let detail: unknown;
  switch (e.event_type) {
    case 'tool_call':
      detail = p.tool;
      break;
    case 'llm_call':
      detail = p.model;
      break;
    case 'decision':
      detail = p.action;
      break;
    case 'delegation':
      detail = p.subagent_id;
      break;
    case 'custom':
      detail = p.name;
      break;
    case 'error':
      detail = p.error?.message;
      break;
    default:
      detail = undefined;
  }
  const text = typeof detail === 'string' && detail.length > 0 ? `${e.event_type} ${detail}` : e.event_type;
  return text.length > MAX_STEP ? `${text.slice(0, MAX_STEP - 1)}…` : text;
}

interface SessionAgg {
  id: string;
  agent: string;
  texts: Buffer[];
  agents: Map<string, number>;
  ft: string;
  lt: string;
  fms: number;
  lms: number;
  st: 'completed' | 'error' | undefined;
  cs: string;
  it: number;
  ot: number;
  cost: number;
  ec: number;
  tc: number;
  tools: Map<string, number>;
  codes: Map<string, number>;
  p: number;
  fo: number;
  lo: number;
  /** Offset gaps of at least KAFKA_INDEX_MIN_GAP between two records of the session in this batch. */
  gaps: Array<[number, number]>;
  et: number[];
}

/**
 * The smallest run of other sessions' records worth noting in a session's Kafka index as a gap a
 * reader may skip. A reader pays a new fetch per skip (~4 ms here, with its 128 KiB fetches) and
 * ~15 µs per record it scans instead, so a skip pays off from ~300 records on.
 */
export const KAFKA_INDEX_MIN_GAP = 500;
/** At most this many gaps per session index (~20 bytes each); past them the reader just scans. */
export const KAFKA_INDEX_MAX_GAPS = 100;

// session_end with status error closes a failed session; it is not one more error.
const isError = (e: AgentEvent): boolean => e.event_type === 'error' || (e.status === 'error' && e.event_type !== 'session_end');

const MAX_CODE = 200;

/** The code of an error event's recorded error, as text (undefined when it has none). */
export function errorCodeOf(e: AgentEvent): string | undefined {
  const c = e.payload.error?.code;
  if ((typeof c !== 'string' || c === '') && (typeof c !== 'number' || !Number.isFinite(c))) return undefined;
  // The code becomes part of a key name: keep it bounded.
  return String(c).slice(0, MAX_CODE);
}

/**
 * Groups a batch by session and precomputes every aggregate, so the script does one write per
 * session and field instead of one per event. `good` must be in offset order per partition.
 */
export function buildPlan(good: GoodRecord[], skipped: SkippedRecord[], ctx: PlanContext, prefix: string): ApplyPlan {
  const sessions = new Map<string, SessionAgg>();
  const parts = new Map<number, [number, number]>();
  const see = (partition: number, offset: number) => {
    const r = parts.get(partition);
    if (!r) parts.set(partition, [offset, offset]);
    else {
      if (offset < r[0]) r[0] = offset;
      if (offset > r[1]) r[1] = offset;
    }
  };
  for (const s of skipped) see(s.partition, s.offset);
  for (const r of good) {
    see(r.partition, r.offset);
    const e = r.event;
    const ms = Date.parse(e.timestamp);
    let s = sessions.get(e.session_id);
    if (!s) {
      s = {
        id: e.session_id,
        agent: e.agent_id,
        texts: [],
        agents: new Map(),
        ft: e.timestamp,
        lt: e.timestamp,
        fms: ms,
        lms: ms,
        st: undefined,
        cs: '',
        it: 0,
        ot: 0,
        cost: 0,
        ec: 0,
        tc: 0,
        tools: new Map(),
        codes: new Map(),
        p: r.partition,
        fo: r.offset,
        lo: r.offset,
        gaps: [],
        et: [],
      };
      sessions.set(e.session_id, s);
    }
    s.texts.push(r.value);
    s.agents.set(e.agent_id, Math.max(s.agents.get(e.agent_id) ?? 0, ms));
    // Timestamps share one fixed-width UTC format (the schema's pattern), so strings compare as times.
    if (e.timestamp < s.ft) {
      s.ft = e.timestamp;
      s.fms = ms;
    }
    if (e.timestamp > s.lt) {
      s.lt = e.timestamp;
      s.lms = ms;
    }
    if (e.event_type === 'session_end') s.st = e.status === 'error' ? 'error' : 'completed';
    s.cs = describeStep(e);
    const p = e.payload;
    if (typeof p.input_tokens === 'number') s.it += p.input_tokens;
    if (typeof p.output_tokens === 'number') s.ot += p.output_tokens;
    if (typeof p.cost_usd === 'number') s.cost += p.cost_usd;
    else if (e.event_type === 'llm_call' && ctx.prices && typeof p.model === 'string') s.cost += costOf(p.model, num(p.input_tokens), num(p.output_tokens), ctx.prices) ?? 0;
    if (isError(e)) {
      s.ec += 1;
      s.et.push(ms);
      const code = errorCodeOf(e);
      if (code !== undefined) s.codes.set(code, (s.codes.get(code) ?? 0) + 1);
    }
    if (e.event_type === 'tool_call') {
      s.tc += 1;
      const tool = typeof p.tool === 'string' && p.tool.length > 0 ? p.tool : '(unnamed)';
      s.tools.set(tool, (s.tools.get(tool) ?? 0) + 1);
    }
    // The batch holds every record of the partition between the two: none of them is the session's.
    if (r.partition === s.p && r.offset - s.lo > KAFKA_INDEX_MIN_GAP) s.gaps.push([s.lo, r.offset]);
    s.p = r.partition;
    s.lo = r.offset;
  }

  const k = ctx.keys;
  // The order is the script's KEYS layout (see APPLY_BATCH).
  const keys: string[] = [
    k.offsets(ctx.group, ctx.topic),
    k.byActivity(),
    k.byCost(),
    k.agents(),
    k.alertsFired(),
    k.alertsRecent(),
    alertsOutboxKey(prefix),
    k.byStart(),
    k.byEvents(),
    k.byErrors(),
    k.byToolCalls(),
    k.byMaxToolCalls(),
    k.byDuration(),
    k.toolNames(),
    k.errorCodes(),
    k.byStatus('active'),
    k.byStatus('completed'),
    k.byStatus('error'),
    k.offsetKeys(),
    k.offsetsOwner(ctx.group, ctx.topic),
  ];
  const args: Array<string | Buffer> = [''];
  const hs: unknown[] = [];
  let eventCount = 0;
  for (const s of sessions.values()) {
    const base = keys.length;
    keys.push(k.events(s.id), k.meta(s.id), k.tools(s.id), k.kafkaIndex(s.id), recentErrorsKey(prefix, s.id));
    const agentRefs: Array<[number, string, number]> = [];
    for (const [agent, ms] of s.agents) {
      agentRefs.push([keys.length + 1, agent, ms]);
      keys.push(k.byAgent(agent));
    }
    // Per tool and error code: [name, count, KEYS index of its sessions index].
    const toolRefs: Array<[string, number, number]> = [];
    for (const [tool, n] of s.tools) {
      toolRefs.push([tool, n, keys.length + 1]);
      keys.push(k.toolSessions(tool));
    }
    const codeRefs: Array<[string, number, number]> = [];
    for (const [code, n] of s.codes) {
      codeRefs.push([code, n, keys.length + 1]);
      keys.push(k.errorCodeSessions(code));
    }
    for (const t of s.texts) args.push(t);
    eventCount += s.texts.length;
    const h: Record<string, unknown> = {
      id: s.id,
      k: base,
      n: s.texts.length,
      a: s.agent,
      ag: agentRefs,
      ft: s.ft,
      lt: s.lt,
      fms: s.fms,
      lms: s.lms,
      cs: s.cs,
      it: s.it,
      ot: s.ot,
      // A string: Redis then adds exact decimals instead of a 17-digit binary rendering.
      c: String(Math.round(s.cost * 1e9) / 1e9),
      ec: s.ec,
      tc: s.tc,
      tools: toolRefs,
      codes: codeRefs,
      p: s.p,
      fo: String(s.fo),
      lo: String(s.lo),
      et: s.et,
      ch: k.sessionChannel(s.id),
    };
    if (s.st) h.st = s.st;
    // 'after:before' pairs: no record of the session lies strictly between the two offsets.
    if (s.gaps.length > 0) h.g = s.gaps.map(([a, b]) => `${a}:${b}`);
    hs.push(h);
  }
  const partList: Array<[number, number, number]> = [...parts].map(([p, [first, last]]) => [p, first, last + 1]);
  const rules: Record<string, unknown> = {};
  if (ctx.rules) {
    if (ctx.rules.costThresholdUsd !== false) rules.cost = ctx.rules.costThresholdUsd;
    if (ctx.rules.maxSameToolCalls !== false) rules.tool = ctx.rules.maxSameToolCalls;
    if (ctx.rules.errorBurst !== false) {
      rules.errN = ctx.rules.errorBurst.count;
      rules.errWin = ctx.rules.errorBurst.windowMs;
    }
  }
  const agents = new Set<string>();
  for (const s of sessions.values()) for (const a of s.agents.keys()) agents.add(a);
  const header = {
    agents: [...agents],
    parts: partList.map(([p, first, next]) => [String(p), String(first), String(next)]),
    s: hs,
    ttl: ctx.ttlSeconds,
    at: new Date(ctx.now).toISOString(),
    topic: ctx.topic,
    upd: k.updatesChannel(),
    recent: ctx.recentAlerts,
    r: rules,
    own: ctx.owner ? [ctx.owner.clusterId, ctx.owner.topicId] : undefined,
    gap: KAFKA_INDEX_MIN_GAP,
    gapMax: KAFKA_INDEX_MAX_GAPS,
  };
  args[0] = JSON.stringify(header);
  return { keys, args, parts: partList, sessions: [...sessions.keys()], eventCount };
}

/** Drops records below the offsets Redis already holds (a redelivery after a crash or rebalance). */
export function dropApplied<T extends { partition: number; offset: number }>(records: T[], stored: Map<number, number>): T[] {
  if (stored.size === 0) return records;
  return records.filter((r) => {
    const next = stored.get(r.partition);
    return next === undefined || r.offset >= next;
  });
}
