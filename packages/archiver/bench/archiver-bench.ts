/**
 * Archive throughput from a backlog and bytes per event versus the raw JSON.
 *   scripts/bench archiver [--events 200000] [--partitions 4] [--roll-rows 25000] [--workers 2]
 * Produces a backlog of realistic events to a fresh topic, then times one Archiver (default
 * options) from partition assignment until every partition's offsets are committed, i.e. until
 * every event is durably in a Parquet object on S3, and the process's CPU time per event meanwhile.
 * To show where that CPU goes against the machine's budget, it also measures, on the same events:
 * - the encode workers' work per event on one thread (validation, column building, Parquet);
 * - the Kafka client alone: the backlog consumed with the archiver's consumer settings and nothing
 *   done with the records, with librdkafka (the archiver's client) and with a pure-JS client, and
 *   the floor for any client (fetch-floor.ts: Fetch requests, record batches walked in place);
 * - a native writer for scale (DuckDB, JSON to Parquet, no validation);
 * - parquetjs-lite, the design's original choice of writer.
 */
import { newEventId, parseEvent, type AgentEvent } from '@agenttrace/contract';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { DuckDBInstance } from '@duckdb/node-api';
import Kafka, { type Message } from '@confluentinc/kafka-javascript';
import { Consumer as PureConsumer } from '@platformatic/kafka';
import { rdkafkaConfig } from '@agenttrace/common';
import { Archiver, ColumnBuffer } from '../src/index.js';
import { createTopic, deleteTopic, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { allCommitted, deletePrefix, highWatermarks, s3 } from '../test/helpers.js';
import { fetchFloor } from './fetch-floor.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('events', 200_000);
const PARTITIONS = arg('partitions', 4);
// Files must roll on size here, not on age (default 5 min), or the run measures the age limit.
const ROLL_ROWS = arg('roll-rows', 25_000);
// Encode worker threads (the archiver's default is 2; 0 = everything on the main thread).
const WORKERS = arg('workers', 2);
const tools = ['stripe.create_invoice', 'crm.lookup', 'email.send', 'search.web', 'db.query'];

function event(i: number): AgentEvent {
  const sessionId = `sess_${(i % 2000).toString(36).padStart(6, '0')}`;
  const kind = i % 4;
  const base = {
    schema_version: 1 as const,
    event_id: newEventId(),
    session_id: sessionId,
    agent_id: 'invoice-generator-v2',
    emitter_id: `em_${(i % 2000).toString(36)}`,
    seq: Math.floor(i / 2000),
    timestamp: new Date(Date.now() - 600_000 + Math.floor(i / 10)).toISOString(),
    status: (i % 50 === 0 ? 'error' : 'ok') as AgentEvent['status'],
    context: { reasoning: 'Milestone 2 completion requires an invoice before the end of the month', confidence: 0.94 },
  };
  if (kind === 0)
    return { ...base, event_type: 'llm_call', payload: { model: 'claude-sonnet-4-5', input: 'Summarize the customer record and decide the next step', output: 'Create the invoice for milestone 2', input_tokens: 1200 + (i % 300), output_tokens: 300 + (i % 50), cost_usd: 0.0081, latency_ms: 800 + (i % 400) } };
  if (kind === 3) return { ...base, event_type: 'decision', payload: { action: 'skip_email', options: ['send_email', 'skip_email'] } };
  return { ...base, event_type: 'tool_call', payload: { tool: tools[i % 5], input: { customer_id: `cus_${i % 1000}`, amount: 4500 + (i % 7) }, output: { invoice_id: `inv_${i}` }, latency_ms: 20 + (i % 90) } };
}

const values = Array.from({ length: N }, (_, i) => event(i));
const raw = values.map((e) => ({ key: e.session_id, value: JSON.stringify(e) }));
const rawBytes = raw.reduce((a, r) => a + Buffer.byteLength(r.value), 0);

// Per-event cost of each stage of the encode workers' work, on this thread, warm: one pass to let
// the JIT settle, then the median of three passes over the same 25k records.
const STAGE_N = 25_000;
const stageRaw = raw.slice(0, STAGE_N).map((r) => ({ key: Buffer.from(r.key), value: Buffer.from(r.value) }));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const stageRuns: Array<{ validate: number; columns: number; encode: number; bytes: number }> = [];
for (let pass = 0; pass < 4; pass++) {
  let t0 = performance.now();
  const events = stageRaw.map((r) => {
    const p = parseEvent(r.value, { key: r.key });
    if (!p.ok) throw new Error(p.detail);
    return p.event;
  });
  const validate = performance.now() - t0;
  t0 = performance.now();
  const buf = new ColumnBuffer();
  events.forEach((e, i) => buf.push(e, Date.parse(e.timestamp), i));
  const columns = performance.now() - t0;
  t0 = performance.now();
  const bytes = buf.encode(0, { rowGroupRows: 100_000, compression: 'snappy' }).byteLength;
  const encode = performance.now() - t0;
  if (pass > 0) stageRuns.push({ validate, columns, encode, bytes });
}
const perEvent = (ms: number) => (ms * 1000) / STAGE_N;
const stage = {
  validate: perEvent(median(stageRuns.map((r) => r.validate))),
  columns: perEvent(median(stageRuns.map((r) => r.columns))),
  encode: perEvent(median(stageRuns.map((r) => r.encode))),
  bytes: stageRuns[0]!.bytes / STAGE_N,
};

// A native Parquet writer on the same events, for scale: DuckDB reads them as newline-delimited
// JSON (each wrapped with its offset) and writes the archive's columns. It validates nothing.
const duckDir = mkdtempSync(`${tmpdir()}/arch-bench-`);
const duck = await (await DuckDBInstance.create(':memory:', { threads: '1' })).connect();
const duckCpu: number[] = [];
let duckBytes = 0;
for (let pass = 0; pass < 4; pass++) {
  const c0 = process.cpuUsage();
  const parts: Buffer[] = [];
  stageRaw.forEach((r, i) => parts.push(Buffer.from(`{"o":${i},"e":`), r.value, Buffer.from('}\n')));
  writeFileSync(`${duckDir}/in.json`, Buffer.concat(parts));
  await duck.run(`COPY (SELECT e.event_id AS event_id, e.session_id AS session_id, e.agent_id AS agent_id, e.emitter_id AS emitter_id, e.seq AS seq,
      e.timestamp::TIMESTAMP AS timestamp, e.event_type AS event_type, e.status AS status, e.payload->>'tool' AS tool,
      coalesce(e.payload->>'model', e.context->>'model') AS model, TRY_CAST(e.payload->>'input_tokens' AS BIGINT) AS input_tokens,
      TRY_CAST(e.payload->>'output_tokens' AS BIGINT) AS output_tokens, TRY_CAST(e.payload->>'cost_usd' AS DOUBLE) AS cost_usd,
      TRY_CAST(e.payload->>'latency_ms' AS DOUBLE) AS latency_ms, e.context->>'parent_event_id' AS parent_event_id, 1 AS schema_version,
      0 AS kafka_partition, o AS kafka_offset, e.payload::VARCHAR AS payload_json, e.context::VARCHAR AS context_json, e.offload::VARCHAR AS offload_json
    FROM read_json('${duckDir}/in.json', format = 'newline_delimited', columns = {o: 'BIGINT', e: 'STRUCT(event_id VARCHAR, session_id VARCHAR, agent_id VARCHAR,
      emitter_id VARCHAR, seq BIGINT, timestamp VARCHAR, event_type VARCHAR, status VARCHAR, payload JSON, context JSON, offload JSON)'}))
    TO '${duckDir}/out.parquet' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 100000)`);
  duckBytes = readFileSync(`${duckDir}/out.parquet`).byteLength;
  const c = process.cpuUsage(c0);
  if (pass > 0) duckCpu.push((c.user + c.system) / STAGE_N);
}
duck.closeSync();
rmSync(duckDir, { recursive: true, force: true });

// The design's first choice of writer, on 50k events (one pass: it is slow enough to need no warm-up).
const sample = raw.slice(0, 50_000).map((r) => {
  const p = parseEvent(r.value);
  if (!p.ok) throw new Error(p.detail);
  return p.event;
});
let t = performance.now();
// @ts-expect-error parquetjs-lite ships no types
const parquet = (await import('parquetjs-lite')).default;
const U = (optional = false) => ({ type: 'UTF8', compression: 'SNAPPY', optional });
const schema = new parquet.ParquetSchema({
  event_id: U(), session_id: U(), agent_id: U(), emitter_id: U(), seq: { type: 'INT64', compression: 'SNAPPY' }, timestamp: { type: 'TIMESTAMP_MILLIS', compression: 'SNAPPY' },
  event_type: U(), status: U(), tool: U(true), model: U(true), input_tokens: { type: 'INT64', optional: true, compression: 'SNAPPY' }, output_tokens: { type: 'INT64', optional: true, compression: 'SNAPPY' },
  cost_usd: { type: 'DOUBLE', optional: true, compression: 'SNAPPY' }, latency_ms: { type: 'DOUBLE', optional: true, compression: 'SNAPPY' }, parent_event_id: U(true),
  kafka_offset: { type: 'INT64', compression: 'SNAPPY' }, payload_json: U(), context_json: U(),
});
const chunks: Buffer[] = [];
const { Writable } = await import('node:stream');
const sink = new Writable({ write(c, _e, cb) { chunks.push(Buffer.from(c)); cb(); } });
const w = await parquet.ParquetWriter.openStream(schema, sink);
w.setRowGroupSize(50_000);
for (let i = 0; i < sample.length; i++) {
  const e = sample[i]!;
  await w.appendRow({ event_id: e.event_id, session_id: e.session_id, agent_id: e.agent_id, emitter_id: e.emitter_id, seq: e.seq, timestamp: new Date(e.timestamp), event_type: e.event_type, status: e.status,
    tool: e.payload.tool, model: e.payload.model, input_tokens: e.payload.input_tokens, output_tokens: e.payload.output_tokens, cost_usd: e.payload.cost_usd, latency_ms: e.payload.latency_ms,
    kafka_offset: i, payload_json: JSON.stringify(e.payload), context_json: JSON.stringify(e.context) });
}
await w.close();
const plRate = sample.length / ((performance.now() - t) / 1000);
const plBytes = chunks.reduce((a, c) => a + c.length, 0);

const topic = uniqueName('arch-bench');
const prefix = uniqueName('arch-bench');
await createTopic(topic, PARTITIONS);
t = performance.now();
await produceRaw(topic, raw);
const produceSecs = (performance.now() - t) / 1000;
const high = await highWatermarks(topic, PARTITIONS);

let assignedAt = 0;
const archiver = new Archiver({
  kafka: { brokers: stack.brokers },
  topic,
  dlqTopic: `${topic}.dlq`,
  groupId: uniqueName('arch-bench-group'),
  s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
  rollRows: ROLL_ROWS,
  encodeWorkers: WORKERS,
  log: (level, msg, fields) => {
    if (process.env.BENCH_DEBUG) console.error(level, msg, JSON.stringify(fields ?? {}));
    if (msg === 'partitions assigned' && assignedAt === 0) assignedAt = performance.now();
  },
});
await archiver.start();
const archCpu0 = process.cpuUsage();
// Once everything is read, close() rolls the partial tail files, uploads and commits them, so the
// time measured ends when every event is durably archived (instead of waiting out rollAgeMs).
while (archiver.stats.consumed < N) await new Promise((r) => setTimeout(r, 20));
await archiver.close();
const secs = (performance.now() - assignedAt) / 1000;
const archCpu = process.cpuUsage(archCpu0);
const s = archiver.stats;
if (!allCommitted(s.committed, high)) throw new Error(`not everything was committed: ${JSON.stringify(s.committed)}`);
await deletePrefix(s3(), prefix);

// The client alone on the same backlog: consume every record with the archiver's consumer settings
// and do nothing with it (time from the first record to the last, and the process's CPU time).
const bare = new Kafka.KafkaConsumer(
  { ...rdkafkaConfig({ brokers: stack.brokers }), 'group.id': uniqueName('arch-bench-bare'), 'enable.auto.commit': false, 'isolation.level': 'read_committed', 'fetch.max.bytes': 64 * 1024 * 1024, 'queued.max.messages.kbytes': 256 * 1024 },
  { 'auto.offset.reset': 'earliest' },
);
await new Promise<void>((res, rej) => bare.connect({ timeout: 15_000 }, (err) => (err ? rej(err) : res())));
bare.setDefaultConsumeTimeout(200);
bare.subscribe([topic]);
let bareN = 0;
let bareT0 = 0;
let bareCpu0 = process.cpuUsage();
const bareDeadline = Date.now() + 120_000;
while (bareN < N && Date.now() < bareDeadline) {
  const msgs = await new Promise<Message[]>((res, rej) => bare.consume(10_000, (err, m) => (err ? rej(err) : res(m))));
  if (msgs.length > 0 && bareT0 === 0) {
    bareT0 = performance.now();
    bareCpu0 = process.cpuUsage();
  }
  bareN += msgs.length;
}
const bareSecs = (performance.now() - bareT0) / 1000;
const bareCpu = process.cpuUsage(bareCpu0);
await new Promise<void>((res) => bare.disconnect(() => res()));
if (bareN < N) throw new Error(`consume-only pass read ${bareN} of ${N} records within 120 s`);

// A pure-JavaScript client on the same backlog, also doing nothing with the records: is a client
// without librdkafka's per-record conversion cheaper here? (Pinned to 1.x, the last line that runs
// on Node 20.)
const pure = new PureConsumer({ groupId: uniqueName('arch-bench-pure'), clientId: 'arch-bench-pure', bootstrapBrokers: [...stack.brokers], maxBytes: 64 * 1024 * 1024, maxWaitTime: 200 });
const pureStream = await pure.consume({ topics: [topic], mode: 'earliest', autocommit: false, isolationLevel: 1 });
let pureN = 0;
let pureT0 = 0;
let pureCpu0 = process.cpuUsage();
const pureDeadline = setTimeout(() => void pureStream.close(), 120_000);
for await (const m of pureStream) {
  if (pureN === 0) {
    pureT0 = performance.now();
    pureCpu0 = process.cpuUsage();
  }
  if (m.value === undefined) throw new Error('pure-JS client returned a record without a value');
  if (++pureN >= N) break;
}
clearTimeout(pureDeadline);
const pureSecs = (performance.now() - pureT0) / 1000;
const pureCpu = process.cpuUsage(pureCpu0);
await pureStream.close();
await pure.close();
if (pureN < N) throw new Error(`pure-JS consume-only pass read ${pureN} of ${N} records within 120 s`);

// The floor for any client: Fetch requests straight to the broker, batches walked in place.
const floor = await fetchFloor(stack.brokers[0]!, topic, PARTITIONS, N);
if (floor.records !== N || floor.valueBytes !== rawBytes) throw new Error(`fetch floor read ${floor.records} records / ${floor.valueBytes} bytes, expected ${N} / ${rawBytes}`);
await deleteTopic(topic);
await deleteTopic(`${topic}.dlq`);

const cpuPer = (c: NodeJS.CpuUsage) => (c.user + c.system) / N;
const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`events: ${f(N)} in ${PARTITIONS} partitions, ${WORKERS} encode workers (backlog produced in ${f(produceSecs, 1)} s)`);
console.log(`archive throughput (assignment -> all uploaded and committed): ${f(N / secs)} events/s  (${f(secs, 2)} s, ${s.files} files); archiver process CPU ${f(cpuPer(archCpu), 1)} µs/event`);
console.log(`raw JSON: ${f(rawBytes / N, 1)} bytes/event; Parquet: ${f(s.bytes / s.rows, 1)} bytes/event; ratio ${f(rawBytes / s.bytes, 1)}:1`);
console.log(`budget: 100k events/s on ${availableParallelism()} cores leaves ${f((availableParallelism() * 1e6) / 100_000, 1)} µs of CPU per event for broker, S3 server and archiver together`);
console.log(`encode workers' work, one thread, warm (median of 3 x ${f(STAGE_N)}): validate ${f(stage.validate, 1)} µs + columns ${f(stage.columns, 1)} µs + Parquet ${f(stage.encode, 1)} µs = ${f(stage.validate + stage.columns + stage.encode, 1)} µs/event (${f(stage.bytes, 1)} B/row)`);
console.log(`client only (consume, nothing else): librdkafka ${f(N / bareSecs)} records/s, ${f(cpuPer(bareCpu), 1)} µs of CPU per record; pure-JS @platformatic/kafka ${f(N / pureSecs)} records/s, ${f(cpuPer(pureCpu), 1)} µs; floor (Fetch requests, batches walked in place) ${f(N / floor.seconds)} records/s, ${f(floor.cpuMicros / N, 1)} µs`);
console.log(`native writer for scale (no validation): DuckDB JSON -> Parquet, one thread, ${f(median(duckCpu), 1)} µs of CPU/event, ${f(duckBytes / STAGE_N, 1)} B/row`);
console.log(`design's first writer: parquetjs-lite ${f(plRate)} rows/s, ${f(plBytes / sample.length, 1)} B/row (50k events, one pass)`);
