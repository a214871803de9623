/**
 * OTLP ingest benchmark, in one run against the local broker:
 *  1. agenttrace-otlp (the built CLI, its own process) receiving OTLP/HTTP protobuf requests of
 *     512 GenAI spans each (the OTel SDK's default export batch), a few requests in flight as
 *     BatchSpanProcessors of several agents would send them; spans/s counts spans whose request
 *     was answered 200, i.e. acknowledged by Kafka;
 *  2. side by side, the tracer SDK producing the same number of events of the same size to the
 *     same broker and topic layout (20 partitions), acknowledged (flush).
 * Rounds alternate between the two; medians are printed.
 *
 *   scripts/bench otlp [--spans 100000] [--rounds 3] [--sessions 100] [--concurrency 4] [--baseline DIR]
 *
 * --baseline DIR: another checkout of this repository, built (e.g. a git worktree of an earlier
 * commit); each round then also runs its receiver, so a change is measured against the code
 * before it in one run, on the same broker and load.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createServer } from 'node:net';
import { cpus } from 'node:os';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { AgentTracer } from '@agenttrace/tracer';
import { KafkaAdmin } from '@agenttrace/common';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SPANS = arg('spans', 100_000);
const ROUNDS = arg('rounds', 3);
const SESSIONS = arg('sessions', 100);
const CONCURRENCY = arg('concurrency', 4);
const baselineAt = args.indexOf('--baseline');
const BASELINE = baselineAt >= 0 ? args[baselineAt + 1] : undefined;
const BATCH = 512;
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const brokers = (process.env.AGENTTRACE_BROKERS ?? '127.0.0.1:9092').split(',');
const root = new URL('../../../', import.meta.url).pathname;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const createdTopics: string[] = [];
async function newTopic(): Promise<string> {
  const topic = `bench-otlp-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
  const admin = new KafkaAdmin({ brokers });
  try {
    await admin.ensureTopic({ topic, num_partitions: 20, replication_factor: -1 });
  } finally {
    admin.close();
  }
  createdTopics.push(topic);
  return topic;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const MESSAGES = JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: 'Summarize the open invoices of customer cus_1234 and flag anything overdue by more than 30 days.'.repeat(2) }] }]);

/** Request bodies made by the OTel JS SDK's own serializer: fresh span ids each round (no retries). */
function makeBodies(): Uint8Array[] {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'bench-agent' }), spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('bench');
  const bodies: Uint8Array[] = [];
  for (let i = 0; i < SPANS; i++) {
    const span = tracer.startSpan('chat gpt-4o', {
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': 1200,
        'gen_ai.usage.output_tokens': 300,
        'gen_ai.conversation.id': `bench_sess_${i % SESSIONS}`,
        'gen_ai.input.messages': MESSAGES,
      },
    });
    span.end();
    if ((i + 1) % BATCH === 0 || i === SPANS - 1) {
      bodies.push(ProtobufTraceSerializer.serializeRequest(exporter.getFinishedSpans())!);
      exporter.reset();
    }
  }
  return bodies;
}

async function otlpRound(cliRoot = root): Promise<{ spansPerSec: number; written: number; cpuUsPerSpan: number; windowUsPerSpan: number; busy: number }> {
  const topic = await newTopic();
  const port = await freePort();
  const bodies = makeBodies();
  const child = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/otlp-prof'] : []), `${cliRoot.replace(/\/?$/, '/')}packages/otlp/dist/cli.js`, 'serve', '--port', String(port), '--no-grpc', '--topic', topic, '--brokers', brokers.join(',')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, AGENTTRACE_S3_BUCKET: '' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = `http://127.0.0.1:${port}/v1/traces`;
  for (let i = 0; ; i++) {
    if (stderr.includes('listening')) break;
    if (i > 200) throw new Error(`agenttrace-otlp did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // Warm-up request (connection to Kafka, JIT) outside the measurement.
  const warm = await fetch(url, { method: 'POST', body: bodies[0], headers: { 'Content-Type': 'application/x-protobuf' } });
  if (warm.status !== 200) throw new Error(`warm-up answered ${warm.status}`);
  let next = 1;
  let spansOk = 0;
  const cpu0 = cpuSeconds(child.pid!);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const res = await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`request answered ${res.status}`);
        spansOk += body === bodies.at(-1) ? SPANS - BATCH * (bodies.length - 1) : BATCH;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const windowCpu = cpuSeconds(child.pid!) - cpu0;
  child.kill('SIGTERM');
  await new Promise((r) => child.once('close', r));
  const written = Number(/(\d+) events written/.exec(stderr)?.[1] ?? -1);
  if (written !== SPANS) throw new Error(`agenttrace-otlp wrote ${written} events of ${SPANS}: ${stderr}`);
  const cpu = Number(/cpu ([\d.]+) s/.exec(stderr)?.[1] ?? NaN);
  return { spansPerSec: spansOk / secs, written, cpuUsPerSpan: (cpu * 1e6) / SPANS, windowUsPerSpan: (windowCpu * 1e6) / spansOk, busy: windowCpu / secs };
}

/**
 * CPU time (user + system, all threads) a process has used, from /proc: the receiver's cost per
 * span over the measured window only, which varies far less than spans/s when other work shares
 * the cores.
 */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) in parentheses: utime and stime are 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}

async function tracerRound(): Promise<number> {
  const topic = await newTopic();
  const tracers = Array.from({ length: SESSIONS }, (_, i) => new AgentTracer({ sessionId: `bench_sess_${i}`, agentId: 'bench-agent', topic, kafka: { brokers }, ensureTopic: false, maxQueuedEvents: SPANS, sessionEvents: false }));
  const input = JSON.parse(MESSAGES) as unknown;
  tracers[0]!.logEvent('warmup', {});
  await tracers[0]!.flush();
  const t0 = performance.now();
  for (let i = 0; i < SPANS; i++) {
    // The same step an OTLP chat span becomes: an llm_call with model, tokens and messages.
    void tracers[i % SESSIONS]!.trackLlmCall({ model: 'gpt-4o', input }, () => ({ usage: { input_tokens: 1200, output_tokens: 300 } }));
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(tracers.map((t) => t.flush()));
  const secs = (performance.now() - t0) / 1000;
  const delivered = tracers.reduce((s, t) => s + t.stats().delivered, 0) - 1;
  if (delivered !== SPANS) throw new Error(`tracer delivered ${delivered} of ${SPANS}`);
  await Promise.all(tracers.map((t) => t.close()));
  return SPANS / secs;
}

const otlp: number[] = [];
const otlpCpu: number[] = [];
const base: number[] = [];
const baseCpu: number[] = [];
const sdk: number[] = [];
try {
  process.stdout.write(`OTLP ingest vs tracer SDK: ${SPANS} spans/events per round, ${SESSIONS} sessions, ${BATCH} spans per request, ${CONCURRENCY} requests in flight; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})\n`);
  for (let r = 0; r < ROUNDS; r++) {
    const o = await otlpRound();
    otlp.push(o.spansPerSec);
    otlpCpu.push(o.windowUsPerSpan);
    if (BASELINE !== undefined) {
      const b = await otlpRound(BASELINE);
      base.push(b.spansPerSec);
      baseCpu.push(b.windowUsPerSpan);
      process.stdout.write(`round ${r + 1}: baseline otlp ${Math.round(b.spansPerSec)} spans/s (receiver CPU ${b.windowUsPerSpan.toFixed(1)} µs/span while measured, ${(b.busy * 100).toFixed(0)}% of one core)\n`);
    }
    const t = await tracerRound();
    sdk.push(t);
    process.stdout.write(
      `round ${r + 1}: otlp ${Math.round(o.spansPerSec)} spans/s (${o.written} events written; receiver CPU ${o.windowUsPerSpan.toFixed(1)} µs/span while measured (${o.cpuUsPerSpan.toFixed(1)} incl. start-up), ${(o.busy * 100).toFixed(0)}% of one core), tracer ${Math.round(t)} events/s\n`,
    );
  }
  process.stdout.write(`median: otlp ${Math.round(median(otlp))} spans/s (receiver CPU ${median(otlpCpu).toFixed(1)} µs/span), tracer SDK ${Math.round(median(sdk))} events/s, ratio ${(median(otlp) / median(sdk)).toFixed(2)}\n`);
  if (BASELINE !== undefined) {
    process.stdout.write(`baseline (${BASELINE}): otlp ${Math.round(median(base))} spans/s (receiver CPU ${median(baseCpu).toFixed(1)} µs/span); this checkout / baseline: ${(median(otlp) / median(base)).toFixed(2)}x spans/s, ${(median(otlpCpu) / median(baseCpu)).toFixed(2)}x CPU per span\n`);
  }
} finally {
  const admin = new KafkaAdmin({ brokers });
  for (const topic of createdTopics) await admin.deleteTopic(topic).catch(() => undefined);
  admin.close();
}
process.exit(0);
