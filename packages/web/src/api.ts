/**
 * The JSON documents the API answers with (documented in docs/web.md). Field names follow the
 * `kshark --json` documents so scripts can use either.
 */
import { OptionsError, parseTimeExpression } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { SESSION_SORTS, type ListSessionsOptions, type SessionCursor, type SessionReadResult, type SessionSort, type SessionStatus, type SessionSummary } from '@agenttrace/sessions';
import { HttpError } from './errors.js';

/** `kshark sessions` sorts plus rankings the web view adds. */
export type WebSort = SessionSort | 'tools';
export const WEB_SORTS: readonly WebSort[] = [...SESSION_SORTS, 'tools'];
const STATUSES: readonly SessionStatus[] = ['active', 'completed', 'error'];
const LIST_SOURCES = ['auto', 'redis', 'kafka'] as const;
export const READ_SOURCES = ['auto', 'redis', 'kafka', 'archive'] as const;
/** Largest page of sessions one request may ask for. */
export const MAX_LIST_LIMIT = 1000;

function bad(message: string): HttpError {
  return new HttpError(400, 'BAD_REQUEST', message);
}

export interface ListQuery {
  list: ListSessionsOptions;
  sort: WebSort;
  limit: number;
}

/** The sessions list's query string: agent, status, since, min_cost, sort, limit, source. */
export function parseListQuery(q: URLSearchParams, now = Date.now()): ListQuery {
  const list: ListSessionsOptions = {};
  const agent = q.get('agent');
  if (agent) list.agent = agent;
  const status = q.get('status');
  if (status) {
    if (!STATUSES.includes(status as SessionStatus)) throw bad(`status must be one of ${STATUSES.join(', ')}, got "${status}"`);
    list.status = status as SessionStatus;
  }
  const since = q.get('since');
  if (since) {
    try {
      list.since = parseTimeExpression(since, now, 'since');
    } catch (err) {
      throw bad((err as Error).message);
    }
  }
  const minCost = q.get('min_cost');
  if (minCost) {
    const v = Number(minCost);
    if (!Number.isFinite(v)) throw bad(`min_cost must be a number of USD, got "${minCost}"`);
    list.minCost = v;
  }
  const sort = (q.get('sort') || 'last') as WebSort;
  if (!WEB_SORTS.includes(sort)) throw bad(`sort must be one of ${WEB_SORTS.join(', ')}, got "${sort}"`);
  const limitText = q.get('limit') || '50';
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit <= 0 || limit > MAX_LIST_LIMIT) throw bad(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}, got "${limitText}"`);
  const source = q.get('source') || 'auto';
  if (!(LIST_SOURCES as readonly string[]).includes(source)) throw bad(`source must be one of ${LIST_SOURCES.join(', ')}, got "${source}"`);
  list.source = source as ListSessionsOptions['source'];
  return { list, sort, limit };
}

export function readSource(q: URLSearchParams, name = 'source'): (typeof READ_SOURCES)[number] {
  const s = q.get(name) || 'auto';
  if (!(READ_SOURCES as readonly string[]).includes(s)) throw bad(`${name} must be one of ${READ_SOURCES.join(', ')}, got "${s}"`);
  return s as (typeof READ_SOURCES)[number];
}

export function sessionRow(r: SessionSummary): Record<string, unknown> {
  return {
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
    current_step: r.currentStep,
    partial: r.partial ?? false,
  };
}

export function sessionDocument(r: SessionReadResult, events: AgentEvent[] = r.events): Record<string, unknown> {
  return {
    format: 'agenttrace-web.session.v1',
    session_id: r.sessionId,
    source: r.source,
    partition: r.partition ?? null,
    warnings: r.warnings,
    cursor: r.cursor,
    events,
  };
}

/**
 * A cursor sent back by a page to continue a read live. It only steers where reading resumes in
 * the configured topic; a cursor for another topic is refused rather than followed.
 */
export function parseCursor(text: string | null, topic: string): SessionCursor | undefined {
  if (text === null || text === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad('cursor must be the JSON "cursor" of a session document');
  }
  const c = v as Partial<SessionCursor>;
  if (typeof c !== 'object' || c === null || !['redis', 'kafka', 'archive'].includes(String(c.source)) || c.topic !== topic) throw bad('cursor must be the JSON "cursor" of a session document of this topic');
  const out: SessionCursor = { source: c.source!, topic };
  for (const k of ['partition', 'nextOffset', 'redisIndex'] as const) {
    const n = c[k];
    if (n === undefined) continue;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw bad(`cursor.${k} must be a non-negative integer`);
    out[k] = n;
  }
  return out;
}

export function checkId(id: string, what: string): string {
  if (id === '' || id.length > 512) throw new OptionsError(what, 'must be 1 to 512 characters');
  return id;
}
