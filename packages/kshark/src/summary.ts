import type { AgentEvent } from '@agenttrace/contract';

/** Numbers about a session, as printed at the end of a replay and in --json. */
export interface SessionStats {
  first_ts: string | null;
  last_ts: string | null;
  duration_ms: number;
  event_count: number;
  by_type: Record<string, number>;
  tool_calls: Record<string, number>;
  agents: string[];
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  error_count: number;
  status: 'active' | 'completed' | 'error';
  /** Tools called many times in a row with short gaps: the signature of a retry loop without backoff. */
  retry_loops: RetryLoop[];
}

export interface RetryLoop {
  tool: string;
  calls: number;
  failed: number;
  span_ms: number;
  median_gap_ms: number;
  first_seq: number;
}

/** At least this many consecutive calls of one tool count as a loop. */
const LOOP_MIN_CALLS = 10;
/** Median gap below this means no meaningful backoff between attempts. */
export const LOOP_MAX_MEDIAN_GAP_MS = 2000;

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Runs of at least `minCalls` calls of the same tool back to back by the same agent (other event
 * types in between do not break a run), with or without backoff between them.
 */
export function toolRuns(events: AgentEvent[], minCalls = LOOP_MIN_CALLS): RetryLoop[] {
  const out: RetryLoop[] = [];
  let run: AgentEvent[] = [];
  const flush = () => {
    if (run.length >= minCalls) {
      const times = run.map((e) => Date.parse(e.timestamp));
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      out.push({
        tool: String(run[0]!.payload.tool),
        calls: run.length,
        failed: run.filter((e) => e.status === 'error').length,
        span_ms: times[times.length - 1]! - times[0]!,
        median_gap_ms: median(gaps),
        first_seq: run[0]!.seq,
      });
    }
    run = [];
  };
  for (const e of events) {
    if (e.event_type !== 'tool_call') continue;
    const prev = run[run.length - 1];
    if (prev && (prev.payload.tool !== e.payload.tool || prev.agent_id !== e.agent_id)) flush();
    run.push(e);
  }
  flush();
  return out;
}

/** Runs of one tool with no meaningful backoff between attempts: the signature of a retry loop. */
export function findRetryLoops(events: AgentEvent[]): RetryLoop[] {
  return toolRuns(events).filter((r) => r.median_gap_ms <= LOOP_MAX_MEDIAN_GAP_MS);
}

export function sessionStats(events: AgentEvent[]): SessionStats {
  const byType: Record<string, number> = {};
  const tools: Record<string, number> = {};
  const agents = new Set<string>();
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let minTs: string | null = null;
  let maxTs: string | null = null;
  let inTok = 0;
  let outTok = 0;
  let cost = 0;
  let errors = 0;
  let status: SessionStats['status'] = 'active';
  for (const e of events) {
    byType[e.event_type] = (byType[e.event_type] ?? 0) + 1;
    agents.add(e.agent_id);
    const t = Date.parse(e.timestamp);
    if (t < min) {
      min = t;
      minTs = e.timestamp;
    }
    if (t > max) {
      max = t;
      maxTs = e.timestamp;
    }
    // A delegation's own end is its start plus its latency.
    const lat = typeof e.payload?.latency_ms === 'number' ? e.payload.latency_ms : 0;
    if (t + lat > max) max = t + lat;
    const p = e.payload ?? {};
    if (e.event_type === 'tool_call' && typeof p.tool === 'string') tools[p.tool] = (tools[p.tool] ?? 0) + 1;
    if (typeof p.input_tokens === 'number') inTok += p.input_tokens;
    if (typeof p.output_tokens === 'number') outTok += p.output_tokens;
    if (typeof p.cost_usd === 'number') cost += p.cost_usd;
    // session_end carries the session's outcome, not a failure of its own.
    if (e.status === 'error' && e.event_type !== 'session_end') errors++;
    if (e.event_type === 'session_end') status = e.status === 'error' ? 'error' : 'completed';
  }
  return {
    first_ts: minTs,
    last_ts: maxTs,
    duration_ms: Number.isFinite(min) ? Math.max(0, max - min) : 0,
    event_count: events.length,
    by_type: byType,
    tool_calls: tools,
    agents: [...agents],
    input_tokens: inTok,
    output_tokens: outTok,
    cost_usd: Math.round(cost * 1e6) / 1e6,
    error_count: errors,
    status,
    retry_loops: findRetryLoops(events),
  };
}
