/**
 * Continuous exporter benchmark against the local broker: a topic is filled with N agent events
 * (tracer-style, ~0.5 KB each), then `OtlpForwarder` reads them as a new group and sends them to
 * an OTLP/HTTP endpoint in this process that takes each body and answers 200 at once (it does
 * not decode: the figure is the forwarder's, not a backend's). spans/s counts spans the endpoint
 * answered 2xx for, from start() until the last one; rounds are printed with their median.
 *
 *   npx tsx packages/otlp/bench/forward-bench.ts [--events 20000] [--rounds 3] [--batch 512] [--in-flight 4]
 */
import Kafka from '@confluentinc/kafka-javascript';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { KafkaAdmin, rdkafkaConfig } from '@agenttrace/common';
import { newEventId } from '@agenttrace/contract';
import { OtlpForwarder } from '../src/index.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const EVENTS = arg('events', 20_000);
const ROUNDS = arg('rounds', 3);
const BATCH = arg('batch', 512);
const IN_FLIGHT = arg('in-flight', 4);
const brokers = (process.env.AGENTTRACE_BROKERS ?? '127.0.0.1:9092').split(',');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function fill(topic: string): Promise<void> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig({ brokers }), 'enable.idempotence': true, dr_cb: true, 'linger.ms': 20, partitioner: 'murmur2_random' });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(20);
  let pending = EVENTS;
  const done = new Promise<void>((res) => producer.on('delivery-report', () => --pending === 0 && res()));
  for (let i = 0; i < EVENTS; i++) {
    const sid = `sess_bench_${i % 200}`;
    const e = {
      schema_version: 1,
      event_id: newEventId(),
      session_id: sid,
      agent_id: 'bench-agent',
      emitter_id: 'em_bench',
      seq: Math.floor(i / 200),
      timestamp: new Date().toISOString(),
      event_type: i % 3 === 0 ? 'llm_call' : 'tool_call',
      status: 'ok',
      payload: i % 3 === 0 ? { model: 'gpt-4o', input: 'summarize the invoice '.repeat(6), output: 'ok', input_tokens: 900, output_tokens: 120, latency_ms: 800 } : { tool: 'search', input: { q: 'kafka '.repeat(20) }, output: { hits: 3 }, latency_ms: 40 },
      context: {},
    };
    for (;;) {
      try {
        producer.produce(topic, null, Buffer.from(JSON.stringify(e)), sid, Date.now());
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }
  await done;
  await new Promise<void>((res) => producer.disconnect(() => res()));
}

async function round(n: number): Promise<number> {
  const topic = `bench-forward-${Date.now().toString(36)}-${n}`;
  const admin = new KafkaAdmin({ brokers });
  await admin.ensureTopic({ topic, num_partitions: 4, replication_factor: -1 });
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fill(topic);
    const f = new OtlpForwarder({ endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, kafka: { brokers }, topic, group: `${topic}-g`, dlqTopic: false, batchSize: BATCH, maxInFlight: IN_FLIGHT });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await f.start();
    while (f.stats().spansSent < EVENTS) await new Promise((r) => setTimeout(r, 5));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await f.close();
    const rate = EVENTS / secs;
    console.log(
      `round ${n}: ${EVENTS} spans in ${secs.toFixed(2)} s = ${Math.round(rate)} spans/s; ${f.stats().requests} requests, ${(bytes / EVENTS).toFixed(0)} B/span on the wire; process CPU ${(((cpu.user + cpu.system) / 1e6 / EVENTS) * 1e6).toFixed(1)} µs/span (forwarder and endpoint)`,
    );
    return rate;
  } finally {
    server.close();
    await admin.deleteTopic(topic).catch(() => undefined);
    admin.close();
  }
}

const rates: number[] = [];
console.log(`forward bench: ${EVENTS} events, batch ${BATCH}, ${IN_FLIGHT} in flight, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}`);
for (let i = 1; i <= ROUNDS; i++) rates.push(await round(i));
console.log(`median ${Math.round(median(rates))} spans/s (load average now ${loadavg()[0]!.toFixed(1)})`);
