/**
 * A hung S3 (its process stopped) in the middle of a session (#14): the session's other events
 * are held at most offloadTimeoutMs, every event reaches Kafka exactly once, and every oversized
 * event whose payload could not be stored is marked in Kafka and reported with the true reason.
 * The S3 server here is the test's own (stopped and killed by pid), never the shared one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentTracer, shutdownTracing, type TracerError } from '@agenttrace/tracer';
import { isOffloadRef, type AgentEvent } from '@agenttrace/contract';
import { createS3Client, restoreOffloads } from '@agenttrace/common';
import { assertPortFree, consumeAll, createTopic, deleteTopic, repoRoot, sleep, stack, uniqueName } from '../../../test-support/stack.js';

const OFFLOAD_TIMEOUT_MS = 10_000;
const HANG_MS = 75_000;
/** Scheduling slack on a loaded 2-core machine, on top of the product's bound. */
const SLACK_MS = 5_000;

let server: ChildProcess | undefined;
let dataDir: string | undefined;
const topics: string[] = [];

afterAll(async () => {
  await shutdownTracing();
  if (server?.pid !== undefined && server.exitCode === null) {
    process.kill(server.pid, 'SIGCONT');
    process.kill(server.pid, 'SIGKILL');
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  for (const t of topics) await deleteTopic(t);
});

/** Starts a private s3rver on the first free port of 20300-20399 (the tracer suite's range). */
async function startPrivateS3(bucket: string): Promise<{ endpoint: string; pid: number }> {
  let port: number | undefined;
  for (let p = 20300; p < 20400 && port === undefined; p++) {
    try {
      await assertPortFree(p, 'private s3rver');
      port = p;
    } catch {
      // taken: try the next one
    }
  }
  if (port === undefined) throw new Error('no free port in 20300-20399 for a private s3rver');
  dataDir = mkdtempSync(join(tmpdir(), 'agenttrace-s3hang-'));
  const child = spawn(process.execPath, [join(repoRoot, 'stack', 's3-server.mjs')], {
    env: { ...process.env, AGENTTRACE_S3_PORT: String(port), AGENTTRACE_S3_BUCKET: bucket, AGENTTRACE_S3_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  server = child;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('private s3rver did not start within 20 s')), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('s3 ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`private s3rver exited (code ${code})`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, pid: child.pid! };
}

describe('tracer with S3 hung mid-session', () => {
  it(`holds no event longer than offloadTimeoutMs, delivers each exactly once and reports every unstored payload truly (S3 stopped ${HANG_MS / 1000} s)`, async () => {
    const bucket = 'agenttrace';
    const s3 = await startPrivateS3(bucket);
    const topic = uniqueName('s3hang');
    topics.push(topic);
    // Broker time on every record: how long each event waited in the tracer, measured by Kafka.
    await createTopic(topic, 1, stack.brokers, { 'message.timestamp.type': 'LogAppendTime' });
    const errors: TracerError[] = [];
    const s3opts = { bucket, endpoint: s3.endpoint, prefix: uniqueName('hang') };
    const tracer = new AgentTracer({
      sessionId: 'sess_s3hang',
      agentId: 'a',
      topic,
      kafka: { brokers: stack.brokers },
      s3: s3opts,
      redact: false,
      offloadTimeoutMs: OFFLOAD_TIMEOUT_MS,
      // Shorter than the hold behind a hung upload, with the producer's idle disconnect (5 s) in
      // between: the case where events were once failed as "Kafka unreachable" while it was up.
      deliveryTimeoutMs: 8_000,
      onError: (e) => errors.push(e),
    });

    const recorded: string[] = [];
    const big = new Map<string, string>();
    const t0 = Date.now();
    let stopped = false;
    let resumedAt = 0;
    let n = 0;
    try {
      while (Date.now() - t0 < 10_000 + HANG_MS + 20_000) {
        const elapsed = Date.now() - t0;
        if (!stopped && elapsed >= 10_000) {
          process.kill(s3.pid, 'SIGSTOP');
          stopped = true;
        }
        if (stopped && resumedAt === 0 && elapsed >= 10_000 + HANG_MS) {
          process.kill(s3.pid, 'SIGCONT');
          resumedAt = Date.now();
        }
        n++;
        if (n % 20 === 0) {
          const output = `big ${n} `.padEnd(40_000, 'abcdefghij');
          const id = tracer.logEvent('big', { output });
          big.set(id, output);
          recorded.push(id);
        } else {
          recorded.push(tracer.logEvent('tick', { n }));
        }
        await sleep(100);
      }
    } finally {
      if (stopped && resumedAt === 0) process.kill(s3.pid, 'SIGCONT');
    }
    await tracer.close(30_000);
    const stats = tracer.stats();

    const messages = await consumeAll(topic, { count: recorded.length + 2, timeoutMs: 60_000 });
    const events = messages.map((m) => ({ event: JSON.parse(m.value!.toString('utf8')) as AgentEvent, appendedAt: m.timestamp! }));

    // Exactly once in Kafka, all of them: session_start, the steps, session_end.
    const ids = events.map((e) => e.event.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(recorded.length + 2);
    for (const id of recorded) expect(ids).toContain(id);
    expect(events.map((e) => e.event.seq)).toEqual(Array.from({ length: ids.length }, (_, i) => i));

    // Nothing was reported failed for a reason that is not true: Kafka was up throughout.
    expect(errors.filter((e) => e.code !== 'OFFLOAD_TIMEOUT' && e.code !== 'OFFLOAD_FAILED').map((e) => `${e.code}: ${e.message}`)).toEqual([]);
    expect(stats).toMatchObject({ recorded: recorded.length + 2, delivered: recorded.length + 2, failed: 0, dropped: 0, pending: 0 });

    // Each oversized event either went to S3 or is in Kafka marked, whole, and was reported once.
    const reported = new Map<string, TracerError[]>();
    for (const e of errors) for (const id of e.eventIds) reported.set(id, [...(reported.get(id) ?? []), e]);
    let stored = 0;
    const s3client = createS3Client(s3opts);
    for (const { event } of events.filter((e) => big.has(e.event.event_id))) {
      const output = event.payload.output;
      if (event.offload?.failed === undefined) {
        expect(isOffloadRef(output)).toBe(true);
        expect(reported.has(event.event_id)).toBe(false);
        const back = await restoreOffloads(s3client, event);
        expect(back.failures).toEqual([]);
        expect(back.event.payload.output).toBe(big.get(event.event_id));
        stored++;
      } else {
        expect(output).toBe(big.get(event.event_id));
        expect(event.offload.fields).toEqual(['payload.output']);
        expect(reported.get(event.event_id)?.length).toBe(1);
        const [report] = reported.get(event.event_id)!;
        expect(report!.code).toBe('OFFLOAD_TIMEOUT');
        expect(report!.message).toMatch(/did not finish within offloadTimeoutMs \(10000 ms\)|S3 was not tried: an upload timed out/);
        expect(event.offload.failed).toMatch(/did not finish within offloadTimeoutMs|S3 was not tried: an upload timed out/);
      }
    }
    for (const id of reported.keys()) expect(big.has(id)).toBe(true);
    expect(stats.offloaded).toBe(stored);
    // The hang was seen, and S3 was used again once it answered.
    expect(errors.some((e) => e.code === 'OFFLOAD_TIMEOUT' && /did not finish within offloadTimeoutMs/.test(e.message))).toBe(true);
    const storedAfter = events.filter((e) => big.has(e.event.event_id) && e.event.offload?.failed === undefined && Date.parse(e.event.timestamp) > resumedAt + OFFLOAD_TIMEOUT_MS);
    expect(storedAfter.length).toBeGreaterThan(0);

    // The bound: no event waited in the tracer longer than offloadTimeoutMs (plus scheduling slack).
    const waits = events.map((e) => e.appendedAt - Date.parse(e.event.timestamp));
    expect(Math.max(...waits)).toBeLessThan(OFFLOAD_TIMEOUT_MS + SLACK_MS);
  }, 240_000);
});
