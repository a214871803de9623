/**
 * Archive throughput from a backlog and bytes per event versus the raw JSON.
 *   scripts/bench archiver [--events 200000] [--partitions 4] [--roll-rows 25000] [--workers 2]
 * Produces a backlog of realistic events to a fresh topic, then times one Archiver (default
 * options) from partition assignment until every partition's offsets are committed, i.e. until
 * every event is durably in a Parquet object on S3. For comparison it also times the encoder alone
 * with hyparquet-writer and with parquetjs-lite (the design's original choice) on the same events,
 * and the Kafka client alone: the same backlog consumed with the archiver's consumer settings and
 * nothing done with the records, which is the ceiling for anything built on this client here.
 */
import { newEventId, parseEvent, type AgentEvent } from '@agenttrace/contract';
import Kafka, { type Message } from '@confluentinc/kafka-javascript';
import { rdkafkaConfig } from '@agenttrace/common';
import { Archiver, ColumnBuffer } from '../src/index.js';
import { createTopic, deleteTopic, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { allCommitted, deletePrefix, highWatermarks, s3 } from '../test/helpers.js';

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

// Encoder-only comparison on 50k events.
const sample = raw.slice(0, 50_000).map((r) => {
  const p = parseEvent(r.value);
  if (!p.ok) throw new Error(p.detail);
  return p.event;
});
let t = performance.now();
const cols = new ColumnBuffer();
sample.forEach((e, i) => cols.push(e, Date.parse(e.timestamp), i));
const hyBytes = cols.encode(0, { rowGroupRows: 100_000, compression: 'snappy' }).byteLength;
const hyRate = sample.length / ((performance.now() - t) / 1000);
t = performance.now();
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
// Once everything is read, close() rolls the partial tail files, uploads and commits them, so the
// time measured ends when every event is durably archived (instead of waiting out rollAgeMs).
while (archiver.stats.consumed < N) await new Promise((r) => setTimeout(r, 20));
await archiver.close();
const secs = (performance.now() - assignedAt) / 1000;
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
await deleteTopic(topic);
await deleteTopic(`${topic}.dlq`);

const f = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`events: ${f(N)} in ${PARTITIONS} partitions, ${WORKERS} encode workers (backlog produced in ${f(produceSecs, 1)} s)`);
console.log(`archive throughput (assignment -> all uploaded and committed): ${f(N / secs)} events/s  (${f(secs, 2)} s, ${s.files} files)`);
console.log(`raw JSON: ${f(rawBytes / N, 1)} bytes/event; Parquet: ${f(s.bytes / s.rows, 1)} bytes/event; ratio ${f(rawBytes / s.bytes, 1)}:1`);
console.log(`client only (consume, nothing else): ${f(N / bareSecs)} records/s, ${f((bareCpu.user + bareCpu.system) / N, 1)} µs of CPU per record`);
console.log(`encoder only, 50k events: hyparquet-writer ${f(hyRate)} rows/s, ${f(hyBytes / sample.length, 1)} B/row; parquetjs-lite ${f(plRate)} rows/s, ${f(plBytes / sample.length, 1)} B/row`);
