/**
 * The reliability suite's moving parts: a bounded traced workload, the services under test run
 * as child processes this suite starts (and kills, by pid), and checkers that compare every
 * emitted event id with Redis and with the Parquet archive.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { AgentTracer, type TracerError } from '@agenttrace/tracer';
import { createS3Client, redisKeys, type KafkaConnectionOptions, type S3Options } from '@agenttrace/common';
import { dropRedisPrefix, repoRoot, sleep } from '../test-support/stack.js';

// ---------------------------------------------------------------------------------------------
// Services under test

export class Service {
  readonly name: string;
  readonly #command: string;
  readonly #args: string[];
  readonly #env: NodeJS.ProcessEnv;
  #child: ChildProcess | undefined;
  #log = '';
  starts = 0;
  kills = 0;

  /** `args` are node's unless another `command` is given (the process killed is then that command itself). */
  constructor(name: string, args: string[], env: NodeJS.ProcessEnv = {}, command: string = process.execPath) {
    this.name = name;
    this.#command = command;
    this.#args = args;
    this.#env = env;
  }

  start(): void {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) return;
    const child = spawn(this.#command, this.#args, { env: { ...process.env, ...this.#env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.#child = child;
    this.starts++;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The last output lines (for failure messages). */
  get log(): string {
    return this.#log;
  }

  /** SIGKILL the process this suite started, and wait until it is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid!, 'SIGKILL');
    this.kills++;
    await gone;
  }

  /** SIGTERM, wait for a clean exit (SIGKILL after `graceMs`). */
  async stop(graceMs = 20_000): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timedOut = await Promise.race([gone.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut) await this.kill();
  }
}

export function dashboardService(opts: { brokers: string[]; topic: string; redisUrl: string; prefix: string; group: string; dlqTopic: string; metricsPort?: number }): Service {
  return new Service('dashboard-consumer', [
    join(repoRoot, 'packages/dashboard-consumer/dist/cli.js'),
    '--brokers', opts.brokers.join(','),
    '--topic', opts.topic,
    '--group', opts.group,
    '--redis-url', opts.redisUrl,
    '--redis-prefix', opts.prefix,
    '--dlq-topic', opts.dlqTopic,
    '--alerts-topic', `${opts.topic}.alerts`,
    '--metrics-port', String(opts.metricsPort ?? 0),
    '--no-alerts',
    '--quiet',
  ]);
}

export function archiverService(opts: { brokers: string[]; topic: string; s3Endpoint: string; bucket: string; prefix: string; group: string; dlqTopic: string; metricsPort?: number }): Service {
  const args = [
    join(repoRoot, 'packages/archiver/dist/cli.js'),
    '--brokers', opts.brokers.join(','),
    '--topic', opts.topic,
    '--group', opts.group,
    '--dlq-topic', opts.dlqTopic,
    '--s3-endpoint', opts.s3Endpoint,
    '--s3-bucket', opts.bucket,
    '--s3-prefix', opts.prefix,
    '--roll-rows', '2000',
    '--roll-age', '2s',
    '--quiet',
  ];
  if (opts.metricsPort !== undefined) args.push('--metrics-port', String(opts.metricsPort));
  return new Service('archiver', args);
}

/**
 * A redis-server of the suite's own on a spare port (so it can be killed without touching the
 * machine's), run directly so that killing it kills the server. Append-only file with fsync on
 * every write: like a production Redis with persistence, a SIGKILL loses nothing acknowledged.
 */
export function redisService(port: number): Service {
  const dir = mkdtempSync(join(tmpdir(), 'agenttrace-redis-'));
  return new Service('redis', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], {}, 'redis-server');
}

/** An s3rver of the suite's own on a spare port, with the bucket; data kept across restarts. */
export function s3Service(port: number, bucket: string, dir: string): Service {
  mkdirSync(dir, { recursive: true });
  return new Service('s3', [join(repoRoot, 'stack/s3-server.mjs')], { AGENTTRACE_S3_PORT: String(port), AGENTTRACE_S3_BUCKET: bucket, AGENTTRACE_S3_DIR: dir });
}

// ---------------------------------------------------------------------------------------------
// Workload

export interface WorkloadOptions {
  kafka: KafkaConnectionOptions;
  topic: string;
  sessions: number;
  eventsPerSession: number;
  /** Events per second across all sessions. */
  ratePerSec: number;
  /** Hard stop, whatever was emitted by then. */
  maxDurationMs: number;
  deliveryTimeoutMs?: number;
  /** Called about every 100 ms with the number of events recorded so far (fault injection hooks). */
  onProgress?: (recorded: number) => Promise<void> | void;
  sessionPrefix: string;
}

export interface WorkloadResult {
  /** Event ids per session, in the order they were recorded. */
  emitted: Map<string, string[]>;
  /** Ids the tracer reported as not delivered (DELIVERY_FAILED, BUFFER_FULL). */
  reportedFailed: Set<string>;
  errors: TracerError[];
  delivered: number;
  /** Longest time one tracer call took (the agent must never be blocked). */
  maxCallMs: number;
  /** 99th percentile of tracer call time, ms. */
  p99CallMs: number;
  /** Rejections of close() (delivery failures), as messages. */
  closeErrors: string[];
  elapsedMs: number;
}

export async function runWorkload(opts: WorkloadOptions): Promise<WorkloadResult> {
  const errors: TracerError[] = [];
  const reportedFailed = new Set<string>();
  const tracers = Array.from({ length: opts.sessions }, (_, i) =>
    new AgentTracer({
      sessionId: `${opts.sessionPrefix}-${i}`,
      agentId: `agent-${i % 3}`,
      topic: opts.topic,
      kafka: opts.kafka,
      ensureTopic: false,
      sessionEvents: false,
      deliveryTimeoutMs: opts.deliveryTimeoutMs ?? 60_000,
      handleExit: false,
      onError: (e) => {
        errors.push(e);
        if (e.code === 'DELIVERY_FAILED' || e.code === 'BUFFER_FULL') for (const id of e.eventIds) reportedFailed.add(id);
      },
    }),
  );
  const emitted = new Map<string, string[]>(tracers.map((t) => [t.sessionId, []]));
  const total = opts.sessions * opts.eventsPerSession;
  const started = performance.now();
  let maxCallMs = 0;
  const callMs: number[] = [];
  let recorded = 0;
  let lastProgress = 0;
  while (recorded < total && performance.now() - started < opts.maxDurationMs) {
    // Pace to the target rate in 10 ms slices.
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * opts.ratePerSec) + 1);
    while (recorded < due) {
      const t = tracers[recorded % opts.sessions]!;
      const t0 = performance.now();
      const id = t.logEvent('step', { n: recorded, note: 'reliability workload' }, { reasoning: 'steady load' });
      const took = performance.now() - t0;
      callMs.push(took);
      maxCallMs = Math.max(maxCallMs, took);
      emitted.get(t.sessionId)!.push(id);
      recorded++;
    }
    if (opts.onProgress && performance.now() - lastProgress >= 100) {
      lastProgress = performance.now();
      await opts.onProgress(recorded);
    }
    await sleep(10);
  }
  const closeErrors: string[] = [];
  await Promise.all(tracers.map((t) => t.close().catch((e: Error) => closeErrors.push(e.message))));
  const delivered = tracers.reduce((s, t) => s + t.stats().delivered, 0);
  callMs.sort((a, b) => a - b);
  const p99CallMs = callMs[Math.floor(callMs.length * 0.99)] ?? 0;
  return { emitted, reportedFailed, errors, delivered, maxCallMs, p99CallMs, closeErrors, elapsedMs: performance.now() - started };
}

// ---------------------------------------------------------------------------------------------
// Checks

export interface Tally {
  sessions: number;
  expected: number;
  found: number;
  lost: number;
  duplicated: number;
  /** Sessions whose events are not in recorded order. */
  reordered: number;
  /**
   * Events reported to the agent as DELIVERY_FAILED that are there all the same: the broker wrote
   * them but died before acknowledging (librdkafka reports a timeout, not knowing the outcome).
   */
  arrivedDespiteFailure: number;
  /** Events in the store that this workload never recorded (must be 0). */
  unknown: number;
}

/** Compares what a store holds per session with what was recorded (minus reported failures). */
export function tally(result: WorkloadResult, actual: Map<string, string[]>): Tally {
  const t: Tally = { sessions: result.emitted.size, expected: 0, found: 0, lost: 0, duplicated: 0, reordered: 0, arrivedDespiteFailure: 0, unknown: 0 };
  for (const [session, ids] of result.emitted) {
    const want = ids.filter((id) => !result.reportedFailed.has(id));
    const got = actual.get(session) ?? [];
    t.expected += want.length;
    t.found += got.length;
    const seen = new Set<string>();
    for (const id of got) {
      if (seen.has(id)) t.duplicated++;
      seen.add(id);
    }
    const wanted = new Set(want);
    for (const id of want) if (!seen.has(id)) t.lost++;
    const emitted = new Set(ids);
    for (const id of seen) {
      if (!emitted.has(id)) t.unknown++;
      else if (result.reportedFailed.has(id)) t.arrivedDespiteFailure++;
    }
    const order = got.filter((id, i) => wanted.has(id) && got.indexOf(id) === i);
    const expectedOrder = want.filter((id) => seen.has(id));
    if (order.join() !== expectedOrder.join()) t.reordered++;
  }
  return t;
}

/** Event ids per session from the Redis timelines the dashboard consumer keeps. */
export async function readRedis(redisUrl: string, prefix: string, sessions: Iterable<string>): Promise<Map<string, string[]>> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  const keys = redisKeys(prefix);
  const out = new Map<string, string[]>();
  try {
    for (const s of sessions) {
      const items = await redis.lrange(keys.events(s), 0, -1);
      out.set(
        s,
        items.map((j) => (JSON.parse(j) as { event_id: string }).event_id),
      );
    }
  } finally {
    redis.disconnect();
  }
  return out;
}

/** Deletes every key under a prefix (test clean-up), with its own connection (the tests' Redis may be one they restarted). */
export async function clearRedisPrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect().catch(() => undefined);
  try {
    await dropRedisPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

/**
 * Event ids per session from the Parquet archive, read by DuckDB (an independent reader) from
 * local copies of every object under the prefix, in Kafka offset order.
 */
export async function readArchive(s3opts: S3Options, prefix: string): Promise<{ perSession: Map<string, string[]>; files: number }> {
  const s3 = createS3Client(s3opts);
  const dir = mkdtempSync(join(tmpdir(), 'agenttrace-archive-'));
  let files = 0;
  try {
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: s3opts.bucket, Prefix: `${prefix}/`, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (!o.Key?.endsWith('.parquet')) continue;
        const obj = await s3.send(new GetObjectCommand({ Bucket: s3opts.bucket, Key: o.Key }));
        const path = join(dir, o.Key);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, await obj.Body!.transformToByteArray());
        files++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const perSession = new Map<string, string[]>();
    if (files === 0) return { perSession, files };
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const reader = await conn.runAndReadAll(
      `SELECT session_id, event_id FROM read_parquet('${dir}/**/*.parquet', hive_partitioning = false) ORDER BY session_id, kafka_partition, kafka_offset`,
    );
    for (const [session, id] of reader.getRows() as Array<[string, string]>) {
      const list = perSession.get(session) ?? [];
      list.push(id);
      perSession.set(session, list);
    }
    conn.closeSync();
    return { perSession, files };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Scrapes one metric (summed over labels) from a Prometheus text endpoint. */
export async function scrape(url: string, metric: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(url)).text();
    let sum: number | undefined;
    for (const line of text.split('\n')) {
      if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `)) sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  } catch {
    return undefined;
  }
}

/** Appends a scenario's figures to the report file the docs are written from. */
export function report(scenario: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ scenario, at: new Date().toISOString(), ...figures });
  process.stdout.write(`[reliability] ${line}\n`);
  const dir = join(repoRoot, '.stack');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'reliability-results.jsonl'), `${line}\n`, { flag: 'a' });
}
