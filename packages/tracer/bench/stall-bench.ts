/**
 * How long a large tool output stalls the agent's own event loop (#14).
 *   scripts/bench tracer-stall [--runs 5] [--sizes 5,50]
 * For each size (MB) an agent records one tool call whose output is that much log text, through a
 * tracer with the stack's S3 and default redaction, and a 1 ms timer in the agent measures the
 * longest gap between its ticks until the event is in Kafka (the stall). The anchor is what
 * JSON.stringify of the same payload costs on its own. Medians of --runs runs; also with S3
 * unreachable (the upload fails at once and the event goes out marked and truncated).
 */
import { AgentTracer, shutdownTracing } from '@agenttrace/tracer';
import { cpus } from 'node:os';
import { KafkaAdmin } from '@agenttrace/common';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};
const RUNS = Number(arg('runs', '5'));
const SIZES = arg('sizes', '5,50').split(',').map(Number);
const brokers = (process.env.AGENTTRACE_BROKERS ?? '127.0.0.1:9092').split(',');
const bucket = process.env.AGENTTRACE_S3_BUCKET ?? 'agenttrace';
const endpoint = process.env.AGENTTRACE_S3_ENDPOINT ?? 'http://127.0.0.1:4568';
const topic = `bench-stall-${Date.now().toString(36)}`;
const prefix = `bench-stall-${Date.now().toString(36)}`;

/** Log text of about `mb` MB: lines with numbers, paths and newlines (escaped in JSON). */
function logText(mb: number, salt: number): string {
  const lines: string[] = [];
  let size = 0;
  for (let n = 0; size < mb * 1e6; n++) {
    const line = `${salt} line ${n} INFO worker-${n % 7} processed item ${n * 37} in ${n % 900} ms status=ok path=/var/lib/app/data/file_${n}.txt`;
    lines.push(line);
    size += line.length + 1;
  }
  return lines.join('\n');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs `work` while a 1 ms timer ticks; returns the longest gap between ticks beyond 1 ms. */
async function stallDuring(work: () => Promise<void>): Promise<number> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 1);
    last = now;
  }, 1);
  try {
    await work();
    // One more tick after the work: a block at its very end counts too.
    await new Promise((r) => setTimeout(r, 5));
  } finally {
    clearInterval(timer);
  }
  return worst;
}

const admin = new KafkaAdmin({ brokers });
await admin.ensureTopic({ topic, num_partitions: 1, replication_factor: -1 });
const mk = (s3Endpoint: string) =>
  new AgentTracer({ sessionId: `sess_stall_${s3Endpoint.length}`, agentId: 'bench', topic, kafka: { brokers }, s3: { bucket, endpoint: s3Endpoint, prefix }, sessionEvents: false, handleExit: false });
const healthy = mk(endpoint);
// Nothing listens on port 1: the upload fails at once (connection refused).
const unreachable = mk('http://127.0.0.1:1');
// Warm up: the worker thread, the S3 client, the producer connection.
for (const t of [healthy, unreachable]) {
  await t.trackToolCall('bash', { cmd: 'warmup' }, () => logText(0.1, -1));
  await t.flush().catch(() => undefined);
}

console.log(`tracer stall: ${RUNS} runs per size, medians; node ${process.version}, ${cpus().length} cores`);
console.log('size    JSON.stringify   stall (S3 up)   ratio   stall (S3 unreachable)   ratio');
for (const mb of SIZES) {
  const base: number[] = [];
  const up: number[] = [];
  const down: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const output = logText(mb, r);
    const payload = { tool: 'bash', input: { cmd: 'cat build.log' }, output, latency_ms: 1 };
    const t0 = performance.now();
    JSON.stringify(payload);
    base.push(performance.now() - t0);
    for (const [tracer, into] of [[healthy, up], [unreachable, down]] as const) {
      into.push(
        await stallDuring(async () => {
          await tracer.trackToolCall('bash', { cmd: 'cat build.log' }, () => output);
          await tracer.flush().catch(() => undefined);
        }),
      );
    }
  }
  const b = median(base);
  const u = median(up);
  const d = median(down);
  console.log(`${`${mb} MB`.padEnd(8)}${`${b.toFixed(0)} ms`.padStart(14)}${`${u.toFixed(0)} ms`.padStart(16)}${(u / b).toFixed(2).padStart(8)}${`${d.toFixed(0)} ms`.padStart(25)}${(d / b).toFixed(2).padStart(8)}`);
}
console.log(`offloaded (S3 up): ${healthy.stats().offloaded}; reported failed uploads are expected for the unreachable tracer`);
await Promise.all([healthy.close().catch(() => undefined), unreachable.close().catch(() => undefined)]);
await shutdownTracing();
await admin.deleteTopic(topic).catch(() => undefined);
admin.close();
