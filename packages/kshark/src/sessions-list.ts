import type { ChalkInstance } from 'chalk';
import type { SessionSummary } from '@agenttrace/sessions';
import { formatDuration, safe } from './render.js';
import { safeJson } from './json-output.js';

/** Identifies the `kshark sessions --json` layout. */
export const SESSIONS_JSON_FORMAT = 'kshark.sessions.v1';

export function sessionsJson(rows: SessionSummary[], source: string): string {
  return safeJson(
    {
      format: SESSIONS_JSON_FORMAT,
      source,
      sessions: rows.map((r) => ({
        session_id: r.sessionId,
        agent_id: r.agentId,
        first_ts: r.firstTs,
        last_ts: r.lastTs,
        event_count: r.eventCount,
        status: r.status,
        cost_usd: r.costUsd,
        input_tokens: r.inputTokens,
        output_tokens: r.outputTokens,
        error_count: r.errorCount,
        tool_calls: r.toolCalls,
        duration_ms: r.durationMs ?? 0,
        max_tool_calls: r.maxToolCalls ?? 0,
        max_tool: r.maxTool ?? '',
        tools: r.tools ?? {},
        current_step: r.currentStep,
        partial: r.partial ?? false,
      })),
    },
    2,
  );
}

/** Extra columns for rankings that the default table does not show. */
export interface SessionsTableExtras {
  /** TOOLS (calls) and MOST CALLED (tool ×calls). */
  tools?: boolean;
  /** DURATION. */
  duration?: boolean;
}

export function sessionsTable(rows: SessionSummary[], c: ChalkInstance, now = Date.now(), extras: SessionsTableExtras = {}): string[] {
  const extraHead = `${extras.duration ? ` ${'DURATION'.padStart(9)}` : ''}${extras.tools ? ` ${'TOOLS'.padStart(6)} MOST CALLED` : ''}`;
  const extraCells = (r: SessionSummary): string =>
    `${extras.duration ? ` ${formatDuration(r.durationMs ?? 0).padStart(9)}` : ''}${extras.tools ? ` ${String(r.toolCalls).padStart(6)} ${(r.maxToolCalls ?? 0) > 0 ? `${safe(r.maxTool ?? '').slice(0, 40)} ×${r.maxToolCalls}` : '-'}` : ''}`;
  const out = [c.bold(`${'SESSION'.padEnd(32)} ${'AGENT'.padEnd(24)} ${'STARTED'.padEnd(20)} ${'LAST'.padStart(8)} ${'EVENTS'.padStart(7)} ${'STATUS'.padEnd(9)} ${'COST'.padStart(9)} ${'ERR'.padStart(4)}${extraHead}`)];
  for (const r of rows) {
    const started = safe(r.firstTs).replace('T', ' ').slice(0, 19);
    const ago = `${formatDuration(Math.max(0, now - Date.parse(r.lastTs)))} ago`;
    const status = r.status === 'error' ? c.red(r.status.padEnd(9)) : r.status.padEnd(9);
    out.push(
      `${safe(r.sessionId).slice(0, 32).padEnd(32)} ${safe(r.agentId).slice(0, 24).padEnd(24)} ${started.padEnd(20)} ${ago.padStart(8)} ${`${r.eventCount}${r.partial ? '+' : ''}`.padStart(7)} ${status} ${`$${r.costUsd.toFixed(4)}`.padStart(9)} ${String(r.errorCount).padStart(4)}${extraCells(r)}`,
    );
  }
  if (rows.length === 0) out.push(c.dim('(no sessions match)'));
  return out;
}
