import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { listArchiveFiles } from '@agenttrace/archive-format';
import { createS3Client, redisKeys } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { Archiver } from '@agenttrace/archiver';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { kshark } from './fixtures.js';

/**
 * `kshark patterns` from the archive (Parquet written by the real archiver, read with DuckDB)
 * gives the same answers as from Redis (filled by the real dashboard consumer), for the same
 * events: a retry loop without backoff, one with backoff, an expensive session, an error burst.
 */
const topic = uniqueName('kshark-patterns');
const prefix = `${uniqueName('kshark-patterns')}:`;
const s3Prefix = uniqueName('kshark-patterns');
const cacheDir = mkdtempSync(join(tmpdir(), 'kshark-patterns-cache-'));
const s3 = createS3Client({ endpoint: stack.s3Endpoint });
const T0 = Date.now() - 2 * 3600_000;
let consumer: DashboardConsumer | undefined;

function session(id: string, steps: Array<Partial<AgentEvent>>, gapMs: number, end = true): AgentEvent[] {
  let seq = 0;
  const base = { session_id: id, agent_id: 'invoice-agent', emitter_id: `em_${id}`, context: {} };
  const at = (i: number) => new Date(T0 + i * gapMs).toISOString();
  const out = [makeEvent({ ...base, seq: seq++, event_type: 'session_start', timestamp: at(0), payload: {} })];
  for (const s of steps) out.push(makeEvent({ ...base, seq, timestamp: at(seq++), ...s }));
  if (end) out.push(makeEvent({ ...base, seq, event_type: 'session_end', status: 'ok', timestamp: at(seq), payload: {} }));
  return out;
}

const call = (tool: string, status: 'ok' | 'error' = 'ok'): Partial<AgentEvent> => ({ event_type: 'tool_call', status, payload: { tool, input: {}, latency_ms: 5, ...(status === 'error' ? { error: { name: 'E', message: 'failed' } } : {}) } });

const sessions = [
  // 30 calls back to back, 50 ms apart: a loop without backoff.
  session('sess_loop_fast', Array.from({ length: 30 }, (_, i) => call('stripe.create_payment', i < 29 ? 'error' : 'ok')), 50),
  // 25 calls, 5 s apart: a loop with backoff.
  session('sess_loop_slow', Array.from({ length: 25 }, () => call('crm.lookup', 'error')), 5000),
  // LLM calls priced by the caller, and one priced by the default table (claude-sonnet-4-5: 3/15 per M).
  session('sess_costly', [
    { event_type: 'llm_call', payload: { model: 'gpt-4o', input: 'x', output: 'y', input_tokens: 10, output_tokens: 10, cost_usd: 6, latency_ms: 5 } },
    { event_type: 'llm_call', payload: { model: 'claude-sonnet-4-5-20250929', input: 'x', output: 'y', input_tokens: 1_000_000, output_tokens: 100_000, latency_ms: 5 } },
  ], 1000),
  // Six errors within a few seconds.
  session('sess_burst', Array.from({ length: 6 }, () => ({ event_type: 'error' as const, status: 'error' as const, payload: { error: { name: 'E', message: 'boom' } } })), 500),
  session('sess_quiet', [call('crm.lookup'), call('email.send')], 1000),
];
const events = sessions.flat();

beforeAll(async () => {
  await createTopic(topic, 3);
  await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
  consumer = new DashboardConsumer({ kafka: { brokers: stack.brokers }, topic, group: uniqueName('kshark-patterns-dash'), redisUrl: stack.redisUrl, redisPrefix: prefix, dlqTopic: `${topic}.dlq`, alertsTopic: `${topic}.alerts`, metricsPort: false, alerts: false });
  const archiver = new Archiver({
    kafka: { brokers: stack.brokers },
    topic,
    dlqTopic: `${topic}.dlq`,
    groupId: uniqueName('kshark-patterns-arch'),
    s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: s3Prefix },
    metricsPort: 0,
  });
  await consumer.start();
  await archiver.start();
  const redis = new Redis(stack.redisUrl);
  try {
    await eventually('sessions in Redis', async () => (await redis.zcard(redisKeys(prefix).byStart())) === sessions.length, 60_000, 300);
  } finally {
    await redis.quit();
  }
  // Every record is read once the archiver has committed past it; closing uploads the open files.
  await eventually('archiver read everything', () => archiver.stats.consumed >= events.length, 60_000, 300);
  await archiver.close();
}, 120_000);

afterAll(async () => {
  await consumer?.close();
  for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
  const redis = new Redis(stack.redisUrl);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
  for (const f of await listArchiveFiles({ s3, bucket: stack.s3Bucket, prefix: s3Prefix, topic }).catch(() => [])) await s3.send(new DeleteObjectCommand({ Bucket: stack.s3Bucket, Key: f.key }));
  s3.destroy();
  rmSync(cacheDir, { recursive: true, force: true });
});

const conn = () => ['--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket, '--s3-prefix', s3Prefix];
const thresholds = ['--retry-calls', '20', '--min-cost', '5', '--burst-errors', '5', '--burst-window', '10'];

interface Report {
  source: string;
  retry_loops: Array<{ session_id: string; tool: string; calls: number; longest_run: number; failed: number; backoff: boolean; median_gap_ms: number }>;
  expensive: Array<{ session_id: string; cost_usd: number }>;
  error_bursts: Array<{ session_id: string; burst: number; error_count: number }>;
  stuck: unknown[];
}

describe('kshark patterns --source archive', () => {
  it('answers as the Redis variant does, and fetches each file once', async () => {
    const viaRedis = await kshark(['patterns', '--json', ...thresholds, ...conn()]);
    expect(viaRedis.stderr).toBe('');
    expect(viaRedis.code).toBe(0);
    const viaArchive = await kshark(['patterns', '--source', 'archive', '--json', '--cache-dir', cacheDir, ...thresholds, ...conn()]);
    expect(viaArchive.code).toBe(0);
    const r = JSON.parse(viaRedis.stdout) as Report;
    const a = JSON.parse(viaArchive.stdout) as Report;
    expect(r.source).toBe('redis');
    expect(a.source).toBe('archive');
    const files = await listArchiveFiles({ s3, bucket: stack.s3Bucket, prefix: s3Prefix, topic });
    expect(viaArchive.stderr).toContain(`archive: ${files.length} files (${files.length} fetched`);

    // The findings themselves, first on what is expected of this data...
    expect(a.retry_loops.map((l) => [l.session_id, l.tool, l.calls, l.longest_run, l.failed, l.backoff])).toEqual([
      ['sess_loop_fast', 'stripe.create_payment', 30, 30, 29, false],
      ['sess_loop_slow', 'crm.lookup', 25, 25, 25, true],
    ]);
    expect(a.expensive.map((e) => e.session_id)).toEqual(['sess_costly']);
    expect(a.expensive[0]!.cost_usd).toBeCloseTo(6 + 3 + 1.5, 6);
    // The fast loop's 29 failures within 10 s are a burst too.
    expect(a.error_bursts.map((b) => [b.session_id, b.burst, b.error_count])).toEqual([['sess_loop_fast', 29, 29], ['sess_burst', 6, 6]]);
    // ...then the same as Redis's.
    const strip = (x: Report) => ({ retry_loops: x.retry_loops, expensive: x.expensive.map((e) => ({ ...e, cost_usd: Math.round(e.cost_usd * 1e6) })), error_bursts: x.error_bursts, stuck: x.stuck });
    expect(strip(a)).toEqual(strip(r));

    // A second question reads the cache: nothing is fetched again.
    const again = await kshark(['patterns', '--source', 'archive', '--json', '--cache-dir', cacheDir, ...thresholds, ...conn()]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`archive: ${files.length} files (0 fetched, 0.0 MB; ${files.length} from the cache)`);
    expect(JSON.parse(again.stdout)).toEqual(a);
    expect(readdirSync(join(cacheDir, 'archive', stack.s3Bucket), { recursive: true }).some((f) => String(f).endsWith('.part'))).toBe(false);
  });

  it('names an unreachable archive and exits 4', async () => {
    const r = await kshark(['patterns', '--source', 'archive', '--cache-dir', cacheDir, ...conn(), '--s3-endpoint', 'http://127.0.0.1:1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/could not list the archive in bucket "agenttrace"/);
    expect(r.stdout).toBe('');
  });
});
