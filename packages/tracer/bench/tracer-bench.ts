/**
 * Tracer benchmark, in one run against the local broker:
 *  1. hot-path latency: agent call -> event enqueued (p50/p99/p99.9), with delivery running;
 *  2. acknowledged throughput of ~1 KB events, acks=all + idempotence;
 *  3. side by side, Apache Kafka's ProducerPerformance on the same broker, topic layout,
 *     record size and producer settings.
 * Rounds alternate between the two throughput contenders; medians and the ratio are printed.
 *
 *   scripts/bench tracer [--events 200000] [--rounds 3] [--sessions 100]
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { AgentTracer, shutdownTracing } from '@agenttrace/tracer';
import { KafkaAdmin } from '@agenttrace/common';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const EVENTS = arg('events', 200_000);
const ROUNDS = arg('rounds', 3);
const SESSIONS = arg('sessions', 100);
const HOT_CALLS = arg('hot-calls', 100_000);
const RECORD_SIZE = 1024;
const brokers = (process.env.AGENTTRACE_BROKERS ?? '127.0.0.1:9092').split(',');
const root = new URL('../../../', import.meta.url).pathname;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const letters = (n: number) => {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(65 + Math.floor(Math.random() * 26));
  return s;
};

// Topics are deleted at the end of the run, not after each measurement: the broker removes a
// deleted topic's files about a minute later, and that work would land on a later round.
const createdTopics: string[] = [];

async function withTopic<T>(fn: (topic: string) => Promise<T>): Promise<T> {
  const topic = `bench-tracer-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
  const admin = new KafkaAdmin({ brokers });
  try {
    await admin.ensureTopic({ topic, num_partitions: 20, replication_factor: -1 });
  } finally {
    admin.close();
  }
  createdTopics.push(topic);
  return fn(topic);
}

async function deleteTopics(): Promise<void> {
  const admin = new KafkaAdmin({ brokers });
  for (const topic of createdTopics) await admin.deleteTopic(topic).catch(() => undefined);
  admin.close();
}

/** A payload sized so the whole record value is ~RECORD_SIZE bytes. */
function sizedInput(tracerProbe: { sessionId: string }): { blob: string } {
  const envelope = JSON.stringify({
    schema_version: 1,
    event_id: `evt_${'0'.repeat(26)}`,
    session_id: tracerProbe.sessionId,
    agent_id: 'bench',
    emitter_id: 'em_000000000000',
    seq: 100000,
    timestamp: new Date().toISOString(),
    event_type: 'custom',
    status: 'ok',
    payload: { blob: '', name: 'bench' },
    context: {},
  }).length;
  return { blob: letters(Math.max(16, RECORD_SIZE - envelope)) };
}

async function hotPath(): Promise<{ p50: number; p99: number; p999: number; max: number }> {
  return withTopic(async (topic) => {
    const tracer = new AgentTracer({ sessionId: 'bench_hot', agentId: 'bench', topic, kafka: { brokers }, ensureTopic: false, maxQueuedEvents: 1_000_000, redact: {} });
    const input = { customer_id: 'cus_xyz', amount: 4500, note: letters(600) };
    const samples = new Float64Array(HOT_CALLS);
    // Warm up the JIT and the connection.
    for (let i = 0; i < 5000; i++) tracer.logEvent('warmup', input);
    await tracer.flush();
    let n = 0;
    while (n < HOT_CALLS) {
      // Batches of 1000, then yield so delivery runs concurrently as it would in an agent.
      for (let j = 0; j < 1000 && n < HOT_CALLS; j++, n++) {
        const t0 = performance.now();
        tracer.logDecision({ action: 'bench', reasoning: 'measure the hot path', confidence: 0.5, input });
        samples[n] = (performance.now() - t0) * 1000;
      }
      await new Promise((r) => setImmediate(r));
    }
    await tracer.close();
    const sorted = Array.from(samples).sort((a, b) => a - b);
    return { p50: pct(sorted, 50), p99: pct(sorted, 99), p999: pct(sorted, 99.9), max: sorted.at(-1)! };
  });
}

async function tracerThroughput(redact: boolean): Promise<{ eventsPerSec: number; mbPerSec: number; bytes: number }> {
  return withTopic(async (topic) => {
    const tracers = Array.from({ length: SESSIONS }, (_, i) => new AgentTracer({ sessionId: `bench_sess_${i}`, agentId: 'bench', topic, kafka: { brokers }, ensureTopic: false, maxQueuedEvents: EVENTS, sessionEvents: false, redact: redact ? {} : false }));
    const input = sizedInput(tracers[0]!);
    // Connect first so connection set-up is not part of the measurement.
    tracers[0]!.logEvent('warmup', {});
    await tracers[0]!.flush();
    const t0 = performance.now();
    for (let i = 0; i < EVENTS; i++) {
      tracers[i % SESSIONS]!.logEvent('bench', input);
      if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(tracers.map((t) => t.flush()));
    const secs = (performance.now() - t0) / 1000;
    const delivered = tracers.reduce((s, t) => s + t.stats().delivered, 0) - 1;
    if (delivered !== EVENTS) throw new Error(`only ${delivered} of ${EVENTS} events delivered`);
    await Promise.all(tracers.map((t) => t.close()));
    const bytes = RECORD_SIZE;
    return { eventsPerSec: EVENTS / secs, mbPerSec: (EVENTS * bytes) / secs / 1e6, bytes };
  });
}

/**
 * Kafka's own producer on the same broker and settings. `spread` adds RoundRobinPartitioner, so
 * records go to all 20 partitions as the tracer's session-keyed records do; without it the
 * default sticky partitioner fills large batches on one partition at a time.
 */
async function producerPerformance(spread = false): Promise<{ eventsPerSec: number; mbPerSec: number; line: string }> {
  return withTopic(async (topic) => {
    const r = spawnSync(
      'java',
      [
        '-Xmx512m',
        '-cp',
        `${root}.stack/jars/tools/*`,
        `-Dlog4j2.configurationFile=${root}stack/kafka/log4j2.properties`,
        'org.apache.kafka.tools.ProducerPerformance',
        '--topic',
        topic,
        '--num-records',
        String(EVENTS),
        '--record-size',
        String(RECORD_SIZE),
        '--throughput',
        '-1',
        '--producer-props',
        `bootstrap.servers=${brokers.join(',')}`,
        'acks=all',
        'enable.idempotence=true',
        'compression.type=lz4',
        'linger.ms=5',
        'batch.size=1000000',
        ...(spread ? ['partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner'] : []),
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    const line = r.stdout.trim().split('\n').filter((l) => l.includes('records sent')).at(-1) ?? '';
    const m = /([\d.]+) records\/sec \(([\d.]+) MB\/sec\)/.exec(line);
    if (!m) throw new Error(`ProducerPerformance failed:\n${r.stdout}\n${r.stderr}`);
    return { eventsPerSec: Number(m[1]), mbPerSec: Number(m[2]), line };
  });
}

const fetch = spawnSync(`${root}scripts/stack`, ['fetch-tools'], { stdio: 'inherit' });
if (fetch.status !== 0) throw new Error('could not fetch the Kafka tools jars');

console.log(`tracer benchmark: ${EVENTS} events of ~${RECORD_SIZE} B, ${SESSIONS} sessions, 20 partitions, ${ROUNDS} rounds, broker ${brokers.join(',')}`);
const hot = await hotPath();
console.log(`hot path (call -> enqueued), ${HOT_CALLS} calls: p50 ${hot.p50.toFixed(2)} µs  p99 ${hot.p99.toFixed(2)} µs  p99.9 ${hot.p999.toFixed(2)} µs  max ${hot.max.toFixed(0)} µs`);
const withRedaction: number[] = [];
const withoutRedaction: number[] = [];
const theirs: number[] = [];
const theirsSpread: number[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const a = await tracerThroughput(true);
  withRedaction.push(a.eventsPerSec);
  const b = await producerPerformance();
  theirs.push(b.eventsPerSec);
  const c = await tracerThroughput(false);
  withoutRedaction.push(c.eventsPerSec);
  const d = await producerPerformance(true);
  theirsSpread.push(d.eventsPerSec);
  console.log(
    `round ${round}: tracer (default redaction) ${a.eventsPerSec.toFixed(0)} ev/s (${a.mbPerSec.toFixed(1)} MB/s)  ` +
      `ProducerPerformance ${b.eventsPerSec.toFixed(0)} rec/s (${b.mbPerSec.toFixed(1)} MB/s)  tracer (redaction off) ${c.eventsPerSec.toFixed(0)} ev/s  ` +
      `ProducerPerformance spread over all partitions ${d.eventsPerSec.toFixed(0)} rec/s  ratio ${(a.eventsPerSec / b.eventsPerSec).toFixed(2)}x`,
  );
}
const mr = median(withRedaction);
const mo = median(withoutRedaction);
const mt = median(theirs);
const ms = median(theirsSpread);
console.log(`median: ProducerPerformance ${mt.toFixed(0)} rec/s (default sticky partitioner); spread over all partitions ${ms.toFixed(0)} rec/s`);
console.log(`median: tracer, default redaction ${mr.toFixed(0)} ev/s = ${(mr / mt).toFixed(2)}x ProducerPerformance, ${(mr / ms).toFixed(2)}x spread`);
console.log(`median: tracer, redaction off     ${mo.toFixed(0)} ev/s = ${(mo / mt).toFixed(2)}x ProducerPerformance, ${(mo / ms).toFixed(2)}x spread`);
// Each round runs both contenders back to back, so the ratio within a round is less exposed to the
// machine's load drifting over the run than the ratio of the two medians.
const ratios = withRedaction.map((v, i) => v / theirs[i]!);
console.log(`median of the per-round ratios (tracer, default redaction / ProducerPerformance): ${median(ratios).toFixed(2)}x  [${ratios.map((r) => r.toFixed(2)).join(', ')}]`);
await shutdownTracing();
await deleteTopics();
