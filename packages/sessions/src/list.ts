import type { AgentEvent } from '@agenttrace/contract';

export type SessionStatus = 'active' | 'completed' | 'error';

/** One row of a session list. */
export interface SessionSummary {
  sessionId: string;
  agentId: string;
  /** ISO-8601 of the first and last event. */
  firstTs: string;
  lastTs: string;
  eventCount: number;
  status: SessionStatus;
  costUsd: number;
  inputTokens: number;
  outputTokens: number;
  errorCount: number;
  toolCalls: number;
  /** Last event time minus first event time. (Optional only so rows built elsewhere still type-check; listSessions fills them.) */
  durationMs?: number;
  /** The most calls of one tool, and that tool ('' when the session called none). */
  maxToolCalls?: number;
  maxTool?: string;
  /** Calls per tool. */
  tools?: Record<string, number>;
  /** What the session did last, e.g. `tool_call stripe.create_invoice`. */
  currentStep: string;
  source: 'redis' | 'kafka';
  /** Kafka listing only: the bounded scan may have started after this session's first event. */
  partial?: boolean;
}

/** `recent` is another name for `last` (most recent activity first). */
export type SessionSort = 'last' | 'recent' | 'start' | 'cost' | 'events' | 'errors' | 'tool-calls' | 'max-tool-calls' | 'duration';
export const SESSION_SORTS: readonly SessionSort[] = ['last', 'recent', 'start', 'cost', 'events', 'errors', 'tool-calls', 'max-tool-calls', 'duration'];

export interface ListSessionsOptions {
  /** auto: Redis when the dashboard consumer has materialized anything, else a bounded Kafka scan. */
  source?: 'auto' | 'redis' | 'kafka';
  agent?: string;
  status?: SessionStatus;
  /** Only sessions with an event at or after this time (epoch ms). */
  since?: number;
  /** Only sessions whose last event is at or before this time (epoch ms): idle since then. */
  until?: number;
  minCost?: number;
  /** Only sessions that called this tool (at least `minCalls` times, default 1). */
  tool?: string;
  minCalls?: number;
  /** Only sessions with at least one error event (whatever their status). */
  hasErrors?: boolean;
  /** Only sessions with an error event whose error code is this. */
  errorCode?: string;
  /** Rows returned (default 50). */
  limit?: number;
  /** Default `last` (most recent activity first). */
  sort?: SessionSort;
}

/** The step a session is at, as a short label. */
export function stepLabel(e: AgentEvent): string {
  const p = e.payload ?? {};
  const what = e.event_type === 'tool_call' ? p.tool : e.event_type === 'llm_call' ? p.model : e.event_type === 'decision' ? p.action : e.event_type === 'delegation' ? p.subagent_id : e.event_type === 'custom' ? p.name : undefined;
  return typeof what === 'string' && what ? `${e.event_type} ${what}` : e.event_type;
}

/** The sort value of a row (descending order). */
export function sortValue(r: SessionSummary, sort: SessionSort): number {
  switch (sort) {
    case 'start':
      return Date.parse(r.firstTs);
    case 'cost':
      return r.costUsd;
    case 'events':
      return r.eventCount;
    case 'errors':
      return r.errorCount;
    case 'tool-calls':
      return r.toolCalls;
    case 'max-tool-calls':
      return r.maxToolCalls ?? 0;
    case 'duration':
      return r.durationMs ?? 0;
    default:
      return Date.parse(r.lastTs);
  }
}

/** The most-called tool of a tools map (ties: the first name in sort order). */
export function mostCalled(tools: Record<string, number>): { tool: string; calls: number } {
  let tool = '';
  let calls = 0;
  for (const [name, n] of Object.entries(tools)) if (n > calls || (n === calls && n > 0 && name < tool)) [tool, calls] = [name, n];
  return { tool, calls };
}

/** Folds events of many sessions into summaries (used for the Kafka listing). */
export class SummaryBuilder {
  readonly #rows = new Map<string, SessionSummary & { firstMs: number; lastMs: number; started: boolean; codes: Set<string>; tools: Record<string, number> }>();

  add(e: AgentEvent): void {
    const ms = Date.parse(e.timestamp);
    let row = this.#rows.get(e.session_id);
    if (!row) {
      row = {
        sessionId: e.session_id,
        agentId: e.agent_id,
        firstTs: e.timestamp,
        lastTs: e.timestamp,
        firstMs: ms,
        lastMs: ms,
        eventCount: 0,
        status: 'active',
        costUsd: 0,
        inputTokens: 0,
        outputTokens: 0,
        errorCount: 0,
        toolCalls: 0,
        durationMs: 0,
        maxToolCalls: 0,
        maxTool: '',
        tools: {},
        currentStep: '',
        source: 'kafka',
        started: false,
        codes: new Set(),
      };
      this.#rows.set(e.session_id, row);
    }
    row.eventCount++;
    if (ms < row.firstMs) {
      row.firstMs = ms;
      row.firstTs = e.timestamp;
    }
    if (ms >= row.lastMs) {
      row.lastMs = ms;
      row.lastTs = e.timestamp;
    }
    if (e.event_type === 'session_start') {
      row.agentId = e.agent_id;
      row.started = true;
    }
    const p = e.payload ?? {};
    if (typeof p.cost_usd === 'number') row.costUsd += p.cost_usd;
    if (typeof p.input_tokens === 'number') row.inputTokens += p.input_tokens;
    if (typeof p.output_tokens === 'number') row.outputTokens += p.output_tokens;
    if (e.status === 'error') {
      row.errorCount++;
      const code = p.error?.code;
      if ((typeof code === 'string' && code !== '') || typeof code === 'number') row.codes.add(String(code));
    }
    if (e.event_type === 'tool_call') {
      row.toolCalls++;
      const tool = typeof p.tool === 'string' && p.tool.length > 0 ? p.tool : '(unnamed)';
      row.tools[tool] = (row.tools[tool] ?? 0) + 1;
    }
    row.durationMs = row.lastMs - row.firstMs;
    if (e.event_type === 'session_end') row.status = e.status === 'error' ? 'error' : 'completed';
    row.currentStep = stepLabel(e);
  }

  /** `scanCut`: the scan did not start at the beginning of the partition, so sessions without their session_start may be missing events. */
  rows(scanCut: boolean): SessionSummary[] {
    return [...this.#rows.values()].map(({ firstMs: _f, lastMs: _l, started, codes, ...row }) => {
      const most = mostCalled(row.tools);
      const out: SessionSummary & { errorCodes: Set<string> } = { ...row, maxToolCalls: most.calls, maxTool: most.tool, errorCodes: codes };
      if (scanCut && !started) out.partial = true;
      return out;
    });
  }
}

/** Filters, sorts and cuts a list of summaries. */
export function selectSessions(rows: SessionSummary[], options: ListSessionsOptions): SessionSummary[] {
  const since = options.since;
  const out = rows.filter(
    (r) =>
      (options.agent === undefined || r.agentId === options.agent) &&
      (options.status === undefined || r.status === options.status) &&
      (options.minCost === undefined || r.costUsd >= options.minCost) &&
      (since === undefined || Date.parse(r.lastTs) >= since) &&
      (options.until === undefined || Date.parse(r.lastTs) <= options.until) &&
      (options.hasErrors !== true || r.errorCount > 0) &&
      (options.tool === undefined || (r.tools?.[options.tool] ?? 0) >= (options.minCalls ?? 1)) &&
      (options.errorCode === undefined || (r as SessionSummary & { errorCodes?: Set<string> }).errorCodes?.has(options.errorCode) === true),
  );
  const sort = options.sort ?? 'last';
  out.sort((a, b) => sortValue(b, sort) - sortValue(a, sort) || a.sessionId.localeCompare(b.sessionId));
  return out.slice(0, options.limit ?? 50).map((r) => {
    const { errorCodes: _c, ...row } = r as SessionSummary & { errorCodes?: Set<string> };
    return row;
  });
}
