/**
 * Helpers for integration tests against the real local stack (scripts/stack). Each test makes
 * its own uniquely named topics, Redis prefixes and S3 prefixes, and removes them afterwards.
 */
import Kafka from '@confluentinc/kafka-javascript';
import type { Message, MessageHeader, Producer } from '@confluentinc/kafka-javascript';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { KafkaAdmin, rdkafkaConfig, type KafkaConnectionOptions } from '@agenttrace/common';
import { newEventId, type AgentEvent } from '@agenttrace/contract';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Connection settings of the running stack (from the environment scripts/test exports). */
export const stack = {
  brokers: (process.env.AGENTTRACE_BROKERS ?? '127.0.0.1:9092').split(','),
  redisUrl: process.env.AGENTTRACE_REDIS_URL ?? 'redis://127.0.0.1:6379',
  s3Endpoint: process.env.AGENTTRACE_S3_ENDPOINT ?? 'http://127.0.0.1:4568',
  s3Bucket: process.env.AGENTTRACE_S3_BUCKET ?? 'agenttrace',
};

export const kafkaConn = (brokers: string[] = stack.brokers): KafkaConnectionOptions => ({ brokers, clientId: 'agenttrace-test' });

/** A name unique to this test run, safe for topics, Redis prefixes and S3 prefixes. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export async function createTopic(topic: string, partitions = 4, brokers = stack.brokers, config: Record<string, string> = {}): Promise<void> {
  const admin = new KafkaAdmin(kafkaConn(brokers));
  try {
    await admin.ensureTopic({ topic, num_partitions: partitions, replication_factor: -1, config });
    // CreateTopics answers once the controller has the topic; a broker knows it a moment later (up
    // to ~0.9 s seen here). A client that asks in between is told "unknown topic" and asks again
    // only after a growing backoff, so a test's first records could still be unsent when the
    // fault it injects a second later strikes. Return once a broker describes the topic.
    const deadline = Date.now() + 15_000;
    while ((await admin.partitionCount(topic, 5000).catch(() => undefined)) === undefined) {
      if (Date.now() > deadline) throw new Error(`topic ${topic} was created but no broker of ${brokers.join(',')} describes it after 15 s`);
      await sleep(50);
    }
  } finally {
    admin.close();
  }
}

export async function deleteTopic(topic: string, brokers = stack.brokers): Promise<void> {
  const admin = new KafkaAdmin(kafkaConn(brokers));
  try {
    await admin.deleteTopic(topic).catch(() => undefined);
  } finally {
    admin.close();
  }
}

export interface RawRecord {
  key: string | Buffer | null;
  value: string | Buffer | null;
  partition?: number;
  headers?: MessageHeader[];
}

/** Produces records straight to a topic (not through the tracer) and waits for every ack. */
export async function produceRaw(topic: string, records: RawRecord[], brokers = stack.brokers, producerConfig: Record<string, string | number | boolean> = {}): Promise<void> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn(brokers)), 'enable.idempotence': true, dr_cb: true, partitioner: 'murmur2_random', 'linger.ms': 5, ...producerConfig });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  try {
    await produceRecords(producer, topic, records);
  } finally {
    await new Promise<void>((res) => producer.disconnect(() => res()));
  }
}

/**
 * Produces records on a connected producer (made with dr_cb: true), waiting out a full local
 * queue, and resolves once every delivery report has come; rejects with a failed delivery.
 */
export async function produceRecords(producer: Producer, topic: string, records: RawRecord[]): Promise<void> {
  let pending = records.length;
  let failed: unknown;
  let onReport: ((err: unknown) => void) | undefined;
  const done = new Promise<void>((res) => {
    if (pending === 0) res();
    onReport = (err) => {
      if (err) failed = err;
      if (--pending === 0) res();
    };
    producer.on('delivery-report', onReport);
  });
  producer.setPollInterval(20);
  for (const r of records) {
    const value = r.value === null ? null : Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    for (;;) {
      try {
        producer.produce(topic, r.partition ?? null, value, r.key ?? undefined, Date.now(), undefined, r.headers);
        break;
      } catch (err) {
        if (!/queue full/i.test(String((err as Error).message))) throw err;
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  }
  await done;
  if (onReport) producer.removeListener('delivery-report', onReport);
  if (failed) throw failed;
}

/**
 * Reads a whole topic from the beginning until `count` records have arrived or `timeoutMs`
 * passes (without a consumer group commit). read_committed unless told otherwise.
 */
export async function consumeAll(
  topic: string,
  opts: { count?: number; timeoutMs?: number; brokers?: string[]; isolation?: 'read_committed' | 'read_uncommitted'; conn?: KafkaConnectionOptions } = {},
): Promise<Message[]> {
  const brokers = opts.brokers ?? stack.brokers;
  const conn = opts.conn ?? kafkaConn(brokers);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const admin = new KafkaAdmin(conn);
  let partitions: number;
  try {
    partitions = (await admin.partitionCount(topic)) ?? 0;
  } finally {
    admin.close();
  }
  if (partitions === 0) return [];
  const consumer = new Kafka.KafkaConsumer(
    {
      ...rdkafkaConfig(conn),
      'group.id': uniqueName('test-reader'),
      'enable.auto.commit': false,
      'isolation.level': opts.isolation ?? 'read_committed',
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((res, rej) => consumer.connect({}, (err) => (err ? rej(err) : res())));
  consumer.assign(Array.from({ length: partitions }, (_, p) => ({ topic, partition: p, offset: -2 /* OFFSET_BEGINNING */ })));
  const out: Message[] = [];
  const deadline = Date.now() + timeoutMs;
  let idleSince = Date.now();
  while (Date.now() < deadline) {
    const batch = await new Promise<Message[]>((res, rej) => consumer.consume(1000, (err, msgs) => (err ? rej(err) : res(msgs))));
    if (batch.length > 0) {
      out.push(...batch);
      idleSince = Date.now();
    }
    if (opts.count !== undefined && out.length >= opts.count) break;
    if (opts.count === undefined && batch.length === 0 && Date.now() - idleSince > 2000) break;
  }
  await new Promise<void>((res) => consumer.disconnect(() => res()));
  return out;
}

let seqCounter = 0;
/** A valid contract-v1 event with sensible defaults; override any field. */
export function makeEvent(overrides: Partial<AgentEvent> = {}): AgentEvent {
  return {
    schema_version: 1,
    event_id: newEventId(),
    session_id: 'sess_test',
    agent_id: 'test-agent',
    emitter_id: 'em_test',
    seq: seqCounter++,
    timestamp: new Date().toISOString(),
    event_type: 'tool_call',
    status: 'ok',
    payload: { tool: 'test.tool', input: { n: 1 }, output: { ok: true }, latency_ms: 3 },
    context: {},
    ...overrides,
  };
}

/** Description of a cluster started by `scripts/stack kafka up` (ports and pid files of its nodes). */
export interface ClusterInfo {
  name: string;
  port: number;
  nodes: Array<{ id: number; port: number; pidFile: string; logFile: string }>;
  sasl?: { username: string; password: string };
}

/**
 * Runs `scripts/stack` without blocking the event loop. Starting a three-node cluster on a busy
 * two-core machine can take over a minute; a synchronous spawn would stall the vitest worker long
 * enough for its RPC to the main process to time out ("Timeout calling onTaskUpdate").
 */
function runStack(args: string[]): Promise<ProcessResult> {
  return runProcess(join(repoRoot, 'scripts', 'stack'), args, { timeoutMs: 180_000 });
}

/** Starts (or reuses) an extra cluster through the stack script; returns its description. */
export async function startCluster(name: string, port: number, nodes = 1, extra: string[] = []): Promise<ClusterInfo> {
  const r = await runStack(['kafka', 'up', name, '--port', String(port), '--nodes', String(nodes), ...extra]);
  if (r.code !== 0) throw new Error(`scripts/stack kafka up ${name} failed:\n${r.stdout}${r.stderr}`);
  return clusterInfo(name);
}

export async function clusterInfo(name: string): Promise<ClusterInfo> {
  const r = await runStack(['kafka', 'info', name]);
  if (r.code !== 0) throw new Error(`no cluster ${name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as ClusterInfo;
}

export async function stopCluster(name: string, purge = true): Promise<void> {
  await runStack(['kafka', 'down', name, ...(purge ? ['--purge'] : [])]);
}

/** Restarts one node of a test-started cluster after a fault (tracers keep working meanwhile). */
export async function startNode(name: string, id: number): Promise<void> {
  const r = await runStack(['kafka', 'start-node', name, String(id)]);
  if (r.code !== 0) throw new Error(`restarting ${name} node ${id} failed:\n${r.stdout}${r.stderr}`);
}

/**
 * The pid of a node the test's cluster runs (for SIGKILL fault injection). The pid file records
 * the process's start time too (see scripts/stack); a pid whose process is gone may already
 * belong to another process, so it is returned only while it is still that node.
 */
export function nodePid(info: ClusterInfo, id: number): number {
  const node = info.nodes.find((n) => n.id === id);
  if (!node) throw new Error(`cluster ${info.name} has no node ${id}`);
  const [pidText, started] = readFileSync(node.pidFile, 'utf8').trim().split(/\s+/);
  const pid = Number(pidText);
  let now: string | undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    now = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    now = undefined;
  }
  if (!Number.isInteger(pid) || started === undefined || now !== started) throw new Error(`node ${id} of cluster ${info.name} is not running`);
  return pid;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value or the time runs out (then throws with `what`). */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a Node script (a built CLI) to completion without blocking the event loop. Tests must not
 * use spawnSync for this: back-to-back synchronous tests never let the worker's event loop turn,
 * and once that lasts 60 s vitest's worker RPC times out and fails a green run.
 */
export function runNode(script: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ProcessResult> {
  return runProcess(process.execPath, [script, ...args], options);
}

/** Runs a command to completion, collecting its output; killed (SIGKILL) after timeoutMs. */
export function runProcess(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A TCP port nothing listens on right now, for a server a test starts itself. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Fails with a clear message when something already listens on a fixed port a test is about to
 * give to a server of its own: a leftover from a run that died would otherwise answer in its
 * place, and killing "our" server would then change nothing.
 */
export function assertPortFree(port: number, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(`port ${port} for ${what} is in use (${err.code ?? err.message}); a process left over from an earlier run? See: ss -ltnp 'sport = :${port}'`)),
    );
    s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
  });
}

/** Deletes every Redis key under a test's or benchmark's prefix (SCAN in slices, UNLINK). */
export async function dropRedisPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}
