import type { ChalkInstance } from 'chalk';
import type { AgentEvent } from '@agenttrace/contract';
import { SessionNotFoundError, type SessionReader, type SessionSummary } from '@agenttrace/sessions';
import { formatDuration, safe } from './render.js';
import { safeJson } from './json-output.js';
import { LOOP_MAX_MEDIAN_GAP_MS, toolRuns } from './summary.js';

/** Identifies the `kshark patterns --json` layout. */
export const PATTERNS_JSON_FORMAT = 'kshark.patterns.v1';

export interface PatternOptions {
  /** Retry loops: one tool called more than this many times in a session. */
  retryCalls: number;
  /** Expensive sessions: cost above this (USD). */
  costUsd: number;
  /** Error bursts: at least this many errors within `burstWindowMs`. */
  burstErrors: number;
  burstWindowMs: number;
  /** Stuck sessions: still active, no event for this long. */
  stuckMs: number;
  /** Rows per pattern. */
  limit: number;
  now: number;
}

export interface RetryLoopFinding {
  session_id: string;
  agent_id: string;
  status: string;
  tool: string;
  calls: number;
  /** The longest back-to-back run of the tool: its failures and the median gap between attempts. */
  longest_run: number;
  failed: number;
  median_gap_ms: number;
  backoff: boolean;
}

export interface ErrorBurstFinding {
  session_id: string;
  agent_id: string;
  error_count: number;
  /** Most errors within the window, and when that window started. */
  burst: number;
  burst_start: string;
}

export interface PatternReport {
  format: typeof PATTERNS_JSON_FORMAT;
  source: 'redis' | 'archive';
  thresholds: { retry_calls: number; cost_usd: number; burst_errors: number; burst_window_ms: number; stuck_ms: number };
  retry_loops: RetryLoopFinding[];
  expensive: Array<{ session_id: string; agent_id: string; status: string; cost_usd: number; event_count: number }>;
  error_bursts: ErrorBurstFinding[];
  stuck: Array<{ session_id: string; agent_id: string; last_ts: string; idle_ms: number; current_step: string }>;
  /** Where a pattern's candidates were more than `limit` and only the top ones were read. */
  notes: string[];
}

const isError = (e: AgentEvent): boolean => e.event_type === 'error' || (e.status === 'error' && e.event_type !== 'session_end');

/** Most errors within any window of `windowMs` (events in order of time). */
export function densestErrors(events: AgentEvent[], windowMs: number): { count: number; start: string } {
  const times = events.filter(isError).map((e) => [Date.parse(e.timestamp), e.timestamp] as const).sort((a, b) => a[0] - b[0]);
  let best = { count: 0, start: '' };
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi]![0] - times[lo]![0] > windowMs) lo++;
    if (hi - lo + 1 > best.count) best = { count: hi - lo + 1, start: times[lo]![1] };
  }
  return best;
}

/**
 * The batch patterns over the sessions the dashboard consumer holds in Redis (the hot window),
 * each from the ranking index that bounds it: retry loops from the most calls of one tool,
 * expensive sessions from cost, error bursts from the error count, stuck sessions from activity.
 * Retry loops and bursts then read the candidate sessions' timelines to tell backoff and density.
 */
export async function findPatterns(reader: SessionReader, o: PatternOptions): Promise<PatternReport> {
  const notes: string[] = [];
  // One more than asked tells whether the list was cut.
  const list = (opts: Parameters<SessionReader['listSessions']>[0]) => reader.listSessions({ source: 'redis', limit: o.limit + 1, ...opts });
  const cut = (rows: SessionSummary[], what: string): SessionSummary[] => {
    if (rows.length > o.limit) notes.push(`${what}: more than ${o.limit} sessions; the top ${o.limit} are shown (--limit)`);
    return rows.slice(0, o.limit);
  };
  const events = async (id: string): Promise<AgentEvent[]> => {
    try {
      return (await reader.read(id, { source: 'redis', restoreOffloads: false })).events;
    } catch (err) {
      // Expired between the index read and this one (TTL): nothing left to look at.
      if (err instanceof SessionNotFoundError) {
        notes.push(`session ${id} left Redis while being read`);
        return [];
      }
      throw err;
    }
  };

  const loopRows = cut((await list({ sort: 'max-tool-calls' })).filter((r) => (r.maxToolCalls ?? 0) > o.retryCalls), 'retry loops');
  const retry_loops: RetryLoopFinding[] = [];
  for (const r of loopRows) {
    const tool = r.maxTool ?? '';
    const runs = toolRuns(await events(r.sessionId), 2).filter((run) => run.tool === tool);
    const longest = runs.reduce<(typeof runs)[number] | undefined>((a, b) => (a === undefined || b.calls > a.calls ? b : a), undefined);
    retry_loops.push({
      session_id: r.sessionId,
      agent_id: r.agentId,
      status: r.status,
      tool,
      calls: r.maxToolCalls ?? 0,
      longest_run: longest?.calls ?? 0,
      failed: longest?.failed ?? 0,
      median_gap_ms: longest?.median_gap_ms ?? 0,
      backoff: longest === undefined || longest.median_gap_ms > LOOP_MAX_MEDIAN_GAP_MS,
    });
  }

  const expensive = cut((await list({ sort: 'cost', minCost: o.costUsd })).filter((r) => r.costUsd > o.costUsd), 'expensive sessions').map((r) => ({
    session_id: r.sessionId,
    agent_id: r.agentId,
    status: r.status,
    cost_usd: r.costUsd,
    event_count: r.eventCount,
  }));

  // A session with fewer errors than the burst size cannot hold a burst; the rest are read to find one.
  const errorRows = (await reader.listSessions({ source: 'redis', sort: 'errors', hasErrors: true, limit: o.limit * 5 + 1 })).filter((r) => r.errorCount >= o.burstErrors);
  if (errorRows.length > o.limit * 5) notes.push(`error bursts: only the ${o.limit * 5} sessions with the most errors were read (--limit)`);
  const error_bursts: ErrorBurstFinding[] = [];
  for (const r of errorRows.slice(0, o.limit * 5)) {
    if (error_bursts.length >= o.limit) break;
    const d = densestErrors(await events(r.sessionId), o.burstWindowMs);
    if (d.count >= o.burstErrors) error_bursts.push({ session_id: r.sessionId, agent_id: r.agentId, error_count: r.errorCount, burst: d.count, burst_start: d.start });
  }

  const stuck = cut(await list({ sort: 'recent', status: 'active', until: o.now - o.stuckMs }), 'stuck sessions').map((r) => ({
    session_id: r.sessionId,
    agent_id: r.agentId,
    last_ts: r.lastTs,
    idle_ms: Math.max(0, o.now - Date.parse(r.lastTs)),
    current_step: r.currentStep,
  }));

  return {
    format: PATTERNS_JSON_FORMAT,
    source: 'redis',
    thresholds: { retry_calls: o.retryCalls, cost_usd: o.costUsd, burst_errors: o.burstErrors, burst_window_ms: o.burstWindowMs, stuck_ms: o.stuckMs },
    retry_loops,
    expensive,
    error_bursts,
    stuck,
    notes,
  };
}

export function patternsJson(r: PatternReport): string {
  return safeJson(r, 2);
}

export function patternsText(r: PatternReport, c: ChalkInstance): string[] {
  const t = r.thresholds;
  const out: string[] = [];
  const section = (title: string, rows: string[]) => {
    out.push(c.bold(title));
    out.push(...(rows.length > 0 ? rows.map((l) => `  ${l}`) : [c.dim('  (none)')]));
    out.push('');
  };
  section(
    `Retry loops (one tool called more than ${t.retry_calls} times)`,
    r.retry_loops.map(
      (l) =>
        `${safe(l.session_id)}  ${safe(l.agent_id)}  ${safe(l.tool)} ×${l.calls}  longest run ${l.longest_run}, ${l.failed} failed, ` +
        (l.backoff ? `backoff (median gap ${formatDuration(l.median_gap_ms)})` : c.red(`no backoff (median gap ${formatDuration(l.median_gap_ms)})`)),
    ),
  );
  section(
    `Expensive sessions (cost above $${t.cost_usd})`,
    r.expensive.map((e) => `${safe(e.session_id)}  ${safe(e.agent_id)}  $${e.cost_usd.toFixed(4)}  ${e.event_count} events  ${e.status}`),
  );
  section(
    `Error bursts (${t.burst_errors} or more errors within ${formatDuration(t.burst_window_ms)})`,
    r.error_bursts.map((b) => `${safe(b.session_id)}  ${safe(b.agent_id)}  ${b.burst} errors from ${safe(b.burst_start)}  (${b.error_count} in all)`),
  );
  section(
    `Stuck sessions (active, no event for ${formatDuration(t.stuck_ms)})`,
    r.stuck.map((s) => `${safe(s.session_id)}  ${safe(s.agent_id)}  idle ${formatDuration(s.idle_ms)}  at ${safe(s.current_step)}`),
  );
  for (const n of r.notes) out.push(c.dim(`note: ${n}`));
  return out;
}
