import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { redisKeys, resolveSettings, type AgentTraceSettings } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { SessionReader, type ListSessionsOptions, type SessionSort } from '@agenttrace/sessions';
import type { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { testDashboard } from '../../../test-support/dashboard.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, repoRoot, runNode, stack, uniqueName, dropRedisPrefix } from '../../../test-support/stack.js';

/**
 * Rankings over every session in Redis: 10,000 ordinary recent sessions plus a handful of old
 * ones, each the top of one ranking. A listing that only looked at the most recently active
 * sessions would miss every one of them. The events go through Kafka and the real dashboard
 * consumer, so the indexes are the ones it keeps.
 */
const NORMAL = 10_000;
const OLD = 7;
const topic = uniqueName('rankings');
const prefix = `${uniqueName('rankings')}:`;
const now = Date.now();
const T_NORMAL = now - 2 * 3600_000;
const T_OLD = now - 5 * 3600_000;
const CLI = join(repoRoot, 'packages', 'kshark', 'bin', 'kshark.js');

const all: AgentEvent[] = [];
let consumer: DashboardConsumer | undefined;
let reader: SessionReader;
let settings: AgentTraceSettings;

function build(id: string, agent: string, t0: number, steps: Array<Partial<AgentEvent> & { at: number }>): void {
  steps.forEach(({ at, ...o }, seq) =>
    all.push(makeEvent({ session_id: id, agent_id: agent, emitter_id: `em_${id}`, seq, timestamp: new Date(t0 + at).toISOString(), payload: {}, ...o })),
  );
}

const start = { at: 0, event_type: 'session_start' as const };
const tool = (at: number, name: string, status: 'ok' | 'error' = 'ok') => ({ at, event_type: 'tool_call' as const, status, payload: { tool: name, latency_ms: 5 } });
const error = (at: number, code?: string) => ({ at, event_type: 'error' as const, status: 'error' as const, payload: { error: { message: 'failed', ...(code ? { code } : {}) } } });
const llm = (at: number, cost: number) => ({ at, event_type: 'llm_call' as const, payload: { model: 'm', input_tokens: 10, output_tokens: 5, cost_usd: cost } });
const end = (at: number, status: 'ok' | 'error' = 'ok') => ({ at, event_type: 'session_end' as const, status });

function generate(): void {
  build('sess_old_cost', 'agent-old', T_OLD, [start, llm(1000, 50), end(2000)]);
  build('sess_old_events', 'agent-old', T_OLD + 60_000, [start, ...Array.from({ length: 300 }, (_, i) => ({ at: 100 * (i + 1), event_type: 'decision' as const, payload: { action: 'think' } }))]);
  build('sess_old_errors', 'agent-old', T_OLD + 120_000, [start, ...Array.from({ length: 40 }, (_, i) => error(1000 * (i + 1), 'E_RATE')), end(50_000, 'error')]);
  build('sess_old_tools', 'agent-old', T_OLD + 180_000, [start, ...Array.from({ length: 60 }, (_, i) => tool(100 * (i + 1), `t.${i % 30}`))]);
  build('sess_old_loop', 'agent-old', T_OLD + 240_000, [start, ...Array.from({ length: 45 }, (_, i) => tool(100 * (i + 1), 'retry.tool', i % 2 === 0 ? 'error' : 'ok'))]);
  // A loop that backs off: 25 calls 5 s apart.
  build('sess_old_backoff', 'agent-old', T_OLD + 300_000, [start, ...Array.from({ length: 25 }, (_, i) => tool(5000 * (i + 1), 'poll.tool'))]);
  // Ends before any ordinary session starts: the oldest by last activity too.
  build('sess_old_long', 'agent-old', T_OLD, [start, end(2 * 3600_000 + 50 * 60_000)]);
  for (let i = 0; i < NORMAL; i++) {
    const steps: Array<Partial<AgentEvent> & { at: number }> = [start, tool(1000, i % 3 === 0 ? 'search' : 'fetch'), llm(2000, (i % 10) / 1000)];
    if (i % 7 === 0) steps.push(error(2500, 'E_TIMEOUT'));
    steps.push(end(3000 + (i % 5) * 100, i % 13 === 0 ? 'error' : 'ok'));
    build(`sess_n_${String(i).padStart(5, '0')}`, i % 2 === 0 ? 'agent-a' : 'agent-b', T_NORMAL + i * 500, steps);
  }
}

interface Truth {
  id: string;
  agent: string;
  events: number;
  errors: number;
  toolCalls: number;
  maxToolCalls: number;
  tools: Map<string, number>;
  codes: Set<string>;
  cost: number;
  firstMs: number;
  lastMs: number;
  status: string;
}

/** The expected answer, computed from the generated events by brute force. */
function truth(): Map<string, Truth> {
  const m = new Map<string, Truth>();
  for (const e of all) {
    let t = m.get(e.session_id);
    const ms = Date.parse(e.timestamp);
    if (!t) {
      t = { id: e.session_id, agent: e.agent_id, events: 0, errors: 0, toolCalls: 0, maxToolCalls: 0, tools: new Map(), codes: new Set(), cost: 0, firstMs: ms, lastMs: ms, status: 'active' };
      m.set(e.session_id, t);
    }
    t.events++;
    t.firstMs = Math.min(t.firstMs, ms);
    t.lastMs = Math.max(t.lastMs, ms);
    if (e.event_type === 'error' || (e.status === 'error' && e.event_type !== 'session_end')) {
      t.errors++;
      if (e.payload.error?.code !== undefined) t.codes.add(String(e.payload.error.code));
    }
    if (e.event_type === 'tool_call') {
      t.toolCalls++;
      const n = (t.tools.get(String(e.payload.tool)) ?? 0) + 1;
      t.tools.set(String(e.payload.tool), n);
      t.maxToolCalls = Math.max(t.maxToolCalls, n);
    }
    if (typeof e.payload.cost_usd === 'number') t.cost += e.payload.cost_usd;
    if (e.event_type === 'session_end') t.status = e.status === 'error' ? 'error' : 'completed';
  }
  return m;
}

function expected(sort: SessionSort, limit: number, keep: (t: Truth) => boolean = () => true): string[] {
  const v = (t: Truth): number =>
    ({ cost: t.cost, events: t.events, errors: t.errors, 'tool-calls': t.toolCalls, 'max-tool-calls': t.maxToolCalls, duration: t.lastMs - t.firstMs, start: t.firstMs, last: t.lastMs, recent: t.lastMs })[sort];
  return [...truth().values()]
    .filter(keep)
    .sort((a, b) => v(b) - v(a) || (a.id < b.id ? 1 : -1))
    .slice(0, limit)
    .map((t) => t.id);
}

beforeAll(async () => {
  generate();
  await createTopic(topic, 8);
  settings = resolveSettings({ brokers: stack.brokers.join(','), topic, redisUrl: stack.redisUrl, redisPrefix: prefix, s3Endpoint: stack.s3Endpoint, s3Bucket: stack.s3Bucket }, {});
  consumer = testDashboard(topic, prefix, { group: uniqueName('rankings-dash') });
  await consumer.start();
  const t0 = performance.now();
  await produceRaw(
    topic,
    all.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })),
  );
  const redis = new Redis(stack.redisUrl);
  try {
    let seen = 0;
    const t1 = performance.now();
    await eventually('all sessions indexed', async () => {
      seen = await redis.zcard(redisKeys(prefix).byActivity());
      if (performance.now() - t1 > 90_000) throw new Error(`only ${seen} of ${NORMAL + OLD} sessions indexed after 90 s`);
      return seen === NORMAL + OLD;
    }, 100_000, 250);
    await eventually('all events stored', async () => {
      const ev = await redis.zrange(redisKeys(prefix).byEvents(), 0, -1, 'WITHSCORES');
      let n = 0;
      for (let i = 1; i < ev.length; i += 2) n += Number(ev[i]);
      return n === all.length;
    }, 60_000, 500);
  } finally {
    await redis.quit();
  }
  console.log(`rankings: ${all.length} events in ${NORMAL + OLD} sessions produced and indexed by the dashboard consumer in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  reader = new SessionReader(settings, { redisConnectTimeoutMs: 2000 });
}, 180_000);

afterAll(async () => {
  await consumer?.close();
  await reader?.close();
  const redis = new Redis(stack.redisUrl);
  await dropRedisPrefix(redis, prefix);
  await redis.quit();
  for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t).catch(() => undefined);
}, 60_000);

const TOPS: Array<[SessionSort, string]> = [
  ['cost', 'sess_old_cost'],
  ['events', 'sess_old_events'],
  ['errors', 'sess_old_errors'],
  ['tool-calls', 'sess_old_tools'],
  ['max-tool-calls', 'sess_old_loop'],
  ['duration', 'sess_old_long'],
];

describe('rankings over every session in Redis', () => {
  it.each(TOPS)('--sort %s puts the old %s first, exactly as a full count does', async (sort, top) => {
    const rows = await reader.listSessions({ source: 'redis', sort, limit: 20 });
    expect(rows[0]!.sessionId).toBe(top);
    expect(rows.map((r) => r.sessionId)).toEqual(expected(sort, 20));
    // The old sessions are behind 10,000 more recently active ones.
    const recent = await reader.listSessions({ source: 'redis', sort: 'recent', limit: 1000 });
    expect(recent.map((r) => r.sessionId)).not.toContain(top);
  });

  it('rows carry the ranking fields', async () => {
    const [loop] = await reader.listSessions({ source: 'redis', sort: 'max-tool-calls', limit: 1 });
    expect(loop).toMatchObject({ sessionId: 'sess_old_loop', maxTool: 'retry.tool', maxToolCalls: 45, toolCalls: 45, errorCount: 23, status: 'active', tools: { 'retry.tool': 45 } });
    const [long] = await reader.listSessions({ source: 'redis', sort: 'duration', limit: 1 });
    expect(long!.durationMs).toBe(2 * 3600_000 + 50 * 60_000);
  });

  it('filters are exact too: agent, status, since, tool with a minimum, any error, error code', async () => {
    const t = truth();
    const cases: Array<[ListSessionsOptions & { sort: SessionSort }, (x: Truth) => boolean]> = [
      [{ sort: 'cost', status: 'error' }, (x) => x.status === 'error'],
      [{ sort: 'events', agent: 'agent-a', since: T_NORMAL + 3000 * 500 }, (x) => x.agent === 'agent-a' && x.lastMs >= T_NORMAL + 3000 * 500],
      [{ sort: 'max-tool-calls', tool: 'retry.tool', minCalls: 40 }, (x) => (x.tools.get('retry.tool') ?? 0) >= 40],
      [{ sort: 'duration', tool: 'search' }, (x) => x.tools.has('search')],
      [{ sort: 'tool-calls', hasErrors: true }, (x) => x.errors > 0],
      [{ sort: 'errors', hasErrors: true, agent: 'agent-b' }, (x) => x.errors > 0 && x.agent === 'agent-b'],
      [{ sort: 'recent', errorCode: 'E_RATE' }, (x) => x.codes.has('E_RATE')],
      [{ sort: 'cost', errorCode: 'E_TIMEOUT', status: 'completed' }, (x) => x.codes.has('E_TIMEOUT') && x.status === 'completed'],
      [{ sort: 'start', since: now - 45 * 60_000 }, (x) => x.lastMs >= now - 45 * 60_000],
      [{ sort: 'events', minCost: 0.005, status: 'error' }, (x) => x.cost >= 0.005 && x.status === 'error'],
      [{ sort: 'cost', minCost: 0.008 }, (x) => x.cost >= 0.008],
      [{ sort: 'cost', status: 'active' }, (x) => x.status === 'active'],
    ];
    expect(t.size).toBe(NORMAL + OLD);
    for (const [opts, keep] of cases) {
      const rows = await reader.listSessions({ source: 'redis', limit: 25, ...opts });
      expect(rows.map((r) => r.sessionId), JSON.stringify(opts)).toEqual(expected(opts.sort, 25, keep));
      expect(rows.length, JSON.stringify(opts)).toBeGreaterThan(0);
    }
  });

  it('answers within 500 ms on 10,000 sessions, for every ranking and a filter that matches almost nothing', async () => {
    const figures: string[] = [];
    const runs: Array<ListSessionsOptions & { sort: SessionSort }> = [
      ...(['recent', 'start', 'cost', 'events', 'errors', 'tool-calls', 'max-tool-calls', 'duration'] as SessionSort[]).map((sort) => ({ sort })),
      { sort: 'cost', status: 'active' },
      { sort: 'events', tool: 'search', minCalls: 1 },
      { sort: 'errors', since: now - 3600_000, hasErrors: true },
      { sort: 'duration', status: 'error', agent: 'agent-a' },
    ];
    // One warm-up call opens the connection; the measured calls are what a user's command does.
    await reader.listSessions({ source: 'redis', limit: 1 });
    let worst = 0;
    for (const opts of runs) {
      const t0 = performance.now();
      const rows = await reader.listSessions({ source: 'redis', limit: 50, ...opts });
      const ms = performance.now() - t0;
      worst = Math.max(worst, ms);
      figures.push(`${JSON.stringify(opts)}: ${ms.toFixed(1)} ms (${rows.length} rows)`);
      expect(rows.length).toBeGreaterThan(0);
    }
    console.log(`listSessions over ${NORMAL + OLD} sessions:\n  ${figures.join('\n  ')}`);
    expect(worst).toBeLessThanOrEqual(500);
  });

  it('kshark sessions ranks and filters from the same indexes', async () => {
    const conn = ['--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];
    const r = await runNode(CLI, ['sessions', ...conn, '--sort', 'max-tool-calls', '--limit', '3', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { format: string; source: string; sessions: Array<{ session_id: string; max_tool: string; max_tool_calls: number; tool_calls: number; duration_ms: number; event_count: number }> };
    expect(doc.format).toBe('kshark.sessions.v1');
    expect(doc.source).toBe('redis');
    expect(doc.sessions.map((s) => s.session_id)).toEqual(expected('max-tool-calls', 3));
    expect(doc.sessions[0]).toMatchObject({ session_id: 'sess_old_loop', max_tool: 'retry.tool', max_tool_calls: 45, event_count: 46 });
    const filtered = await runNode(CLI, ['sessions', ...conn, '--tool', 'retry.tool', '--min-calls', '40', '--json']);
    expect((JSON.parse(filtered.stdout) as { sessions: Array<{ session_id: string }> }).sessions.map((s) => s.session_id)).toEqual(['sess_old_loop']);
    const codes = await runNode(CLI, ['sessions', ...conn, '--error-code', 'E_RATE', '--has-errors', '--sort', 'errors']);
    expect(codes.code).toBe(0);
    const lines = codes.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain('sess_old_errors');
    const table = await runNode(CLI, ['sessions', ...conn, '--sort', 'tool-calls', '--limit', '1']);
    expect(table.stdout).toMatch(/TOOLS MOST CALLED/);
    expect(table.stdout).toMatch(/sess_old_tools .* 60 t\.\S+ ×2/);
    const bad = await runNode(CLI, ['sessions', ...conn, '--min-calls', '3']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--min-calls needs --tool');
  });
});

describe('kshark patterns', () => {
  it('finds the retry loops (with and without backoff), expensive sessions, error bursts and stuck sessions', async () => {
    const conn = ['--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];
    const t0 = performance.now();
    const r = await runNode(CLI, ['patterns', ...conn, '--json', '--retry-calls', '20', '--min-cost', '10', '--burst-errors', '5', '--burst-window', '60', '--stuck-after', '30']);
    console.log(`kshark patterns over ${NORMAL + OLD} sessions: ${(performance.now() - t0).toFixed(0)} ms (process start included)`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      format: string;
      retry_loops: Array<{ session_id: string; tool: string; calls: number; backoff: boolean; failed: number; longest_run: number }>;
      expensive: Array<{ session_id: string; cost_usd: number }>;
      error_bursts: Array<{ session_id: string; burst: number }>;
      stuck: Array<{ session_id: string }>;
      notes: string[];
    };
    expect(doc.format).toBe('kshark.patterns.v1');
    expect(doc.retry_loops).toEqual([
      expect.objectContaining({ session_id: 'sess_old_loop', tool: 'retry.tool', calls: 45, longest_run: 45, failed: 23, backoff: false }),
      expect.objectContaining({ session_id: 'sess_old_backoff', tool: 'poll.tool', calls: 25, longest_run: 25, failed: 0, backoff: true }),
    ]);
    expect(doc.expensive.map((e) => [e.session_id, e.cost_usd])).toEqual([['sess_old_cost', 50]]);
    expect(doc.error_bursts.map((b) => [b.session_id, b.burst])).toEqual([
      ['sess_old_errors', 40],
      ['sess_old_loop', 23],
    ]);
    const t = truth();
    const stuck = [...t.values()].filter((x) => x.status === 'active' && x.lastMs <= Date.now() - 30 * 60_000).sort((a, b) => b.lastMs - a.lastMs).map((x) => x.id);
    expect(doc.stuck.map((s) => s.session_id)).toEqual(stuck);
    expect(stuck).toEqual(['sess_old_backoff', 'sess_old_loop', 'sess_old_tools', 'sess_old_events']);
    expect(doc.notes).toEqual([]);
    const text = await runNode(CLI, ['patterns', ...conn]);
    expect(text.stdout).toMatch(/sess_old_loop .*retry\.tool ×45 .*no backoff/);
    expect(text.stdout).toMatch(/sess_old_backoff .*poll\.tool ×25 .*backoff \(median gap 5\.00s\)/);
  });
});
