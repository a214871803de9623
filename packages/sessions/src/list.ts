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
  /** What the session did last, e.g. `tool_call stripe.create_invoice`. */
  currentStep: string;
  source: 'redis' | 'kafka';
  /** Kafka listing only: the bounded scan may have started after this session's first event. */
  partial?: boolean;
}

export type SessionSort = 'last' | 'start' | 'cost' | 'events' | 'errors';
export const SESSION_SORTS: readonly SessionSort[] = ['last', 'start', 'cost', 'events', 'errors'];

export interface ListSessionsOptions {
  /** auto: Redis when the dashboard consumer has materialized anything, else a bounded Kafka scan. */
  source?: 'auto' | 'redis' | 'kafka';
  agent?: string;
  status?: SessionStatus;
  /** Only sessions with an event at or after this time (epoch ms). */
  since?: number;
  minCost?: number;
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

/** Folds events of many sessions into summaries (used for the Kafka listing). */
export class SummaryBuilder {
  readonly #rows = new Map<string, SessionSummary & { firstMs: number; lastMs: number; started: boolean }>();

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
        currentStep: '',
        source: 'kafka',
        started: false,
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
    if (e.status === 'error') row.errorCount++;
    if (e.event_type === 'tool_call') row.toolCalls++;
    if (e.event_type === 'session_end') row.status = e.status === 'error' ? 'error' : 'completed';
    row.currentStep = stepLabel(e);
  }

  /** `scanCut`: the scan did not start at the beginning of the partition, so sessions without their session_start may be missing events. */
  rows(scanCut: boolean): SessionSummary[] {
    return [...this.#rows.values()].map(({ firstMs: _f, lastMs: _l, started, ...row }) => (scanCut && !started ? { ...row, partial: true } : row));
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
      (since === undefined || Date.parse(r.lastTs) >= since),
  );
  const sort = options.sort ?? 'last';
  const key = (r: SessionSummary): number =>
    sort === 'start' ? Date.parse(r.firstTs) : sort === 'cost' ? r.costUsd : sort === 'events' ? r.eventCount : sort === 'errors' ? r.errorCount : Date.parse(r.lastTs);
  out.sort((a, b) => key(b) - key(a) || a.sessionId.localeCompare(b.sessionId));
  return out.slice(0, options.limit ?? 50);
}
