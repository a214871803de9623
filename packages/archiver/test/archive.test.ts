import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import { DLQ_HEADER_OFFSET, DLQ_HEADER_PARTITION, DLQ_HEADER_REASON } from '@agenttrace/common';
import { DLQ_HEADER_TRUNCATED_FROM, DLQ_TRUNCATE_BYTES } from '@agenttrace/common';
import { Archiver, hourStartOf, parseObjectKey, readArchivedSession } from '../src/index.js';
import { consumeAll, createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { allCommitted, deletePrefix, downloadPrefix, duck, highWatermarks, s3 } from './helpers.js';

const HOUR = 3_600_000;
const client = s3();
const topic = uniqueName('arch-rt');
const dlqTopic = `${topic}.dlq`;
const prefix = uniqueName('arch-rt');
const PARTITIONS = 3;
/** Just over the contract's 1 MiB record limit (too_large) and over the DLQ topic's 1 MB. */
const OVERSIZED = 1024 * 1024 + 50_000;
const hourA = hourStartOf(Date.now()) - 3 * HOUR;
const hourB = hourA + HOUR;
const sessions = Array.from({ length: 6 }, (_, i) => `sess_rt_${i}_${prefix}`);
const produced = new Map<string, AgentEvent[]>();
let archiver: Archiver;
let dir: string | undefined;

function sessionEvents(sessionId: string, n: number): AgentEvent[] {
  const out: AgentEvent[] = [];
  const emitter = `em_${sessionId.slice(-6)}`;
  const parent = newEventId();
  for (let i = 0; i < n; i++) {
    // The first half in hour A, the rest in hour B, so files are cut at the hour.
    const ts = (i < n / 2 ? hourA + 50 * 60_000 : hourB + 5 * 60_000) + i * 1000;
    const base = { session_id: sessionId, agent_id: 'invoice-generator-v2', emitter_id: emitter, seq: i, timestamp: new Date(ts).toISOString() };
    const kind = i % 6;
    if (kind === 0) out.push(makeEvent({ ...base, event_type: 'llm_call', payload: { model: 'claude-sonnet-4-5', input: 'plan', output: 'ok', input_tokens: 1200 + i, output_tokens: 300, cost_usd: 0.0081, latency_ms: 812.5 }, context: { reasoning: 'plan the step' } }));
    else if (kind === 1) out.push(makeEvent({ ...base, event_type: 'tool_call', payload: { tool: 'stripe.create_invoice', input: { customer_id: 'cus_1', amount: 4500 }, output: { invoice_id: `inv_${i}` }, latency_ms: 42 }, context: { reasoning: 'Milestone 2 completion', confidence: 0.94, parent_event_id: parent } }));
    else if (kind === 2) out.push(makeEvent({ ...base, event_type: 'error', status: 'error', payload: { tool: 'crm.lookup', error: { name: 'TimeoutError', message: 'timed out after 30s', code: 'ETIMEDOUT' } }, context: {} }));
    else if (kind === 3)
      out.push(
        makeEvent({
          ...base,
          event_type: 'tool_call',
          payload: { tool: 'search.web', input: { $offload: { bucket: 'agenttrace', key: 'payloads/sha256/ab/abc.json', size: 20480, sha256: 'a'.repeat(64), content_type: 'application/json' } }, output: [1, 'two', { three: null }], latency_ms: 7 },
          context: { reasoning: { steps: ['a', 'b'] } },
          offload: { fields: ['payload.input'] },
        }),
      );
    else if (kind === 4) out.push(makeEvent({ ...base, event_type: 'decision', payload: { action: 'skip_email', options: ['send_email', 'skip_email'] }, context: { reasoning: 'Customer disabled notifications \u2014 \u00fcnicode', confidence: 0.89 } }));
    else out.push(makeEvent({ ...base, event_type: 'custom', payload: { name: 'cache_miss', key: 'k', nested: { deep: [1, 2, 3] } }, context: { model: 'claude-haiku' } }));
  }
  return out;
}

describe('archiver against the real stack', () => {
  beforeAll(async () => {
    // The source topic takes records up to 4 MiB, the dead-letter topic only the broker's default 1 MB:
    // an oversized bad record must reach the DLQ truncated, once, without stalling its partition.
    await createTopic(topic, PARTITIONS, stack.brokers, { 'max.message.bytes': String(4 * 1024 * 1024) });
    await createTopic(dlqTopic, 1);
    const records = [];
    for (const s of sessions) {
      const evs = sessionEvents(s, 40);
      produced.set(s, evs);
      for (const e of evs) records.push({ key: s, value: JSON.stringify(e) });
    }
    // Three bad records: not JSON, a key that is not the session, a schema violation.
    records.push({ key: sessions[0]!, value: '{not json' });
    records.push({ key: 'someone-else', value: JSON.stringify(makeEvent({ session_id: sessions[1]! })) });
    records.push({ key: sessions[2]!, value: JSON.stringify({ ...makeEvent({ session_id: sessions[2]! }), event_type: 'nonsense' }) });
    records.push({ key: sessions[3]!, value: JSON.stringify(makeEvent({ session_id: sessions[3]!, payload: { blob: 'x'.repeat(OVERSIZED) } })) });
    await produceRaw(topic, records, stack.brokers, { 'message.max.bytes': 4 * 1024 * 1024 });
    archiver = new Archiver({
      kafka: { brokers: stack.brokers },
      topic,
      dlqTopic,
      groupId: uniqueName('arch-rt-group'),
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
      rollRows: 30,
      rollAgeMs: 1000,
      metricsPort: 0,
      consumer: { 'session.timeout.ms': 10_000 },
    });
    await archiver.start();
    const high = await highWatermarks(topic, PARTITIONS);
    await eventually('everything committed', () => allCommitted(archiver.stats.committed, high), 45_000, 200);
  });

  afterAll(async () => {
    await archiver?.close().catch(() => undefined);
    await deletePrefix(client, prefix);
    await deleteTopic(topic);
    await deleteTopic(dlqTopic);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes typed columns that an independent reader (DuckDB) sees, each event once, never across an hour', async () => {
    const res = await fetch(`http://127.0.0.1:${archiver.metricsPort}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/^agenttrace_archiver_files_written_total\{reason="\w+"\} \d+$/m);
    expect(text).toMatch(/^agenttrace_archiver_dlq_records_total\{reason="too_large"\} 1$/m);
    expect(text).toMatch(/^agenttrace_archiver_dlq_truncated_total 1$/m);
    expect(text).toContain('agenttrace_archiver_upload_retries_total');
    // Every metric carries the project prefix.
    for (const line of text.split('\n')) if (line.startsWith('# TYPE ')) expect(line).toMatch(/^# TYPE agenttrace_archiver_/);
    await archiver.close();
    const got = await downloadPrefix(client, prefix);
    dir = got.dir;
    expect(got.keys.length).toBeGreaterThan(4);
    for (const key of got.keys) {
      expect(key).toMatch(new RegExp(`^${prefix}/${topic}/dt=\\d{4}-\\d{2}-\\d{2}/hour=\\d{2}/part-\\d+-\\d{20}-\\d{20}\\.parquet$`));
      const n = parseObjectKey(key)!;
      expect([hourA, hourB]).toContain(n.hourStart);
    }
    const glob = `'${dir}/**/*.parquet'`;
    const types = Object.fromEntries((await duck(`DESCRIBE SELECT * FROM read_parquet(${glob}, hive_partitioning = false)`)).map((r) => [r.column_name, r.column_type]));
    expect(types).toMatchObject({
      event_id: 'VARCHAR', session_id: 'VARCHAR', agent_id: 'VARCHAR', emitter_id: 'VARCHAR', seq: 'BIGINT', timestamp: 'TIMESTAMP',
      event_type: 'VARCHAR', status: 'VARCHAR', tool: 'VARCHAR', model: 'VARCHAR', input_tokens: 'BIGINT', output_tokens: 'BIGINT',
      cost_usd: 'DOUBLE', latency_ms: 'DOUBLE', parent_event_id: 'VARCHAR', schema_version: 'INTEGER', kafka_partition: 'INTEGER',
      kafka_offset: 'BIGINT', payload_json: 'VARCHAR', context_json: 'VARCHAR', offload_json: 'VARCHAR',
    });
    const [counts] = await duck(`SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS d FROM read_parquet(${glob})`);
    expect(counts).toEqual({ n: 240, d: 240 });
    // Hive columns come from the path; every row must sit in the directory of its own hour.
    const [misplaced] = await duck(
      `SELECT count(*)::INT AS n FROM read_parquet(${glob}, hive_partitioning = true, hive_types_autocast = false)
       WHERE strftime(timestamp, '%Y-%m-%d') <> dt OR strftime(timestamp, '%H') <> hour`,
    );
    expect(misplaced).toEqual({ n: 0 });
    const [llm] = await duck(`SELECT sum(cost_usd) AS cost, sum(input_tokens)::BIGINT AS tin FROM read_parquet(${glob}) WHERE event_type = 'llm_call'`);
    const llmEvents = [...produced.values()].flat().filter((e) => e.event_type === 'llm_call');
    expect(llm!.cost).toBeCloseTo(llmEvents.reduce((a, e) => a + (e.payload.cost_usd ?? 0), 0), 9);
    expect(Number(llm!.tin)).toBe(llmEvents.reduce((a, e) => a + (e.payload.input_tokens ?? 0), 0));
    const [parents] = await duck(`SELECT count(parent_event_id)::INT AS n, count(offload_json)::INT AS o FROM read_parquet(${glob})`);
    expect(parents).toEqual({ n: 6 * 7, o: 6 * 7 });
  });

  it('rebuilds each session exactly, in offset order, and prunes by hour and partition', async () => {
    for (const s of sessions) {
      const events = await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s });
      expect(events).toEqual(produced.get(s));
    }
    const s = sessions[3]!;
    const onlyB = await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s, from: hourB + 1, to: hourB + HOUR - 1 });
    expect(onlyB).toEqual(produced.get(s)!.filter((e) => Date.parse(e.timestamp) >= hourB));
    const onlyA = await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s, from: hourA - 5 * HOUR, to: hourA + 1 });
    expect(onlyA).toEqual(produced.get(s)!.filter((e) => Date.parse(e.timestamp) < hourB));
    const all = await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s, from: hourA, to: hourB + 10 });
    const partition = (await import('@agenttrace/contract')).partitionForKey(s, PARTITIONS);
    expect(await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s, partition })).toEqual(all);
    expect(await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s, partition: (partition + 1) % PARTITIONS })).toEqual([]);
    expect(await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: 'sess_nobody' })).toEqual([]);
    expect(await readArchivedSession({ s3: client, bucket: stack.s3Bucket, prefix, topic, sessionId: s, from: hourB + 2 * HOUR })).toEqual([]);
  });

  it('sends each bad record to the dead-letter topic once, with the reason and where it came from, truncating what does not fit', async () => {
    // No count: read until the topic is idle, so a duplicate would be seen.
    const dlq = await consumeAll(dlqTopic, { timeoutMs: 15_000 });
    const header = (m: (typeof dlq)[number], name: string) => {
      const h = (m.headers ?? []).find((x) => name in x);
      return h === undefined ? undefined : String(h[name]);
    };
    expect(dlq).toHaveLength(4);
    const reasons = dlq.map((m) => header(m, DLQ_HEADER_REASON));
    expect(reasons.sort()).toEqual(['key_mismatch', 'not_json', 'schema_violation', 'too_large']);
    // Each source offset exactly once.
    expect(new Set(dlq.map((m) => `${header(m, DLQ_HEADER_PARTITION)}/${header(m, DLQ_HEADER_OFFSET)}`)).size).toBe(4);
    const big = dlq.find((m) => header(m, DLQ_HEADER_REASON) === 'too_large')!;
    const originalLength = Number(header(big, DLQ_HEADER_TRUNCATED_FROM));
    expect(originalLength).toBeGreaterThan(OVERSIZED);
    expect(big.value!.length).toBe(DLQ_TRUNCATE_BYTES);
    for (const m of dlq.filter((x) => x !== big)) expect(header(m, DLQ_HEADER_TRUNCATED_FROM)).toBeUndefined();
    expect(archiver.stats).toMatchObject({ dlq: 4, dlqTruncated: 1, dlqGivenUp: 0 });
  });
});
