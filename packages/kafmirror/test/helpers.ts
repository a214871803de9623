import Kafka from '@confluentinc/kafka-javascript';
import type { MessageHeader } from '@confluentinc/kafka-javascript';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { rdkafkaConfig } from '@agenttrace/common';
import { kafkaConn, repoRoot } from '../../../test-support/stack.js';

export const CLI = join(repoRoot, 'packages', 'kafmirror', 'dist', 'cli.js');
export const SRC_NAME = 'mirror-src';
export const DST_NAME = 'mirror-dst';
export const SRC_PORT = 23092;
export const DST_PORT = 24092;
export const SRC = [`127.0.0.1:${SRC_PORT}`];
export const DST = [`127.0.0.1:${DST_PORT}`];

/** Commits a consumer group's offsets (partition → next offset) on a cluster, as a consumer that read that far would. */
export async function commitGroupOffsets(group: string, topic: string, committed: Map<number, number>, brokers: string[]): Promise<void> {
  const c = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn(brokers)), 'group.id': group, 'enable.auto.commit': false }, {});
  await new Promise<void>((res, rej) => c.connect({}, (err) => (err ? rej(err) : res())));
  c.commitSync([...committed].map(([partition, offset]) => ({ topic, partition, offset })));
  await new Promise<void>((res) => c.disconnect(() => res()));
}

export interface TimedRecord {
  key: string | null;
  value: string;
  partition: number;
  timestamp: number;
  headers?: MessageHeader[];
}

/** Produces records with chosen partitions and timestamps (produceRaw stamps "now"). */
export async function produceExact(topic: string, records: TimedRecord[], brokers: string[]): Promise<void> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn(brokers)), 'enable.idempotence': true, dr_cb: true, 'linger.ms': 5 });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(10);
  let pending = records.length;
  let failed: unknown;
  const done = new Promise<void>((res) => {
    if (pending === 0) res();
    producer.on('delivery-report', (err) => {
      if (err) failed = err;
      if (--pending === 0) res();
    });
  });
  for (const r of records) producer.produce(topic, r.partition, Buffer.from(r.value), r.key ?? undefined, r.timestamp, undefined, r.headers);
  await done;
  await new Promise<void>((res) => producer.disconnect(() => res()));
  if (failed) throw failed;
}

export interface CliRun {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts the built kafmirror binary with its output captured. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, output: () => out, exited };
}

/** Runs the binary to completion (killing it after timeoutMs). */
export async function runCli(args: string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export const headerText = (headers: MessageHeader[] | undefined): Array<[string, string]> =>
  (headers ?? []).flatMap((h) => Object.entries(h).map(([k, v]): [string, string] => [k, Buffer.isBuffer(v) ? v.toString('utf8') : v]));

/** A long-lived idempotent producer for load loops. */
export async function openProducer(brokers: string[]): Promise<{ send: (topic: string, records: Array<{ key: string; value: string }>) => Promise<void>; close: () => Promise<void> }> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn(brokers)), 'enable.idempotence': true, dr_cb: true, 'linger.ms': 5, partitioner: 'murmur2_random' });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(10);
  let pending = 0;
  let failed: unknown;
  let waiters: Array<() => void> = [];
  producer.on('delivery-report', (err) => {
    if (err) failed = err;
    if (--pending === 0) {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
  });
  return {
    async send(topic, records) {
      pending += records.length;
      for (const r of records) producer.produce(topic, null, Buffer.from(r.value), r.key, Date.now());
      if (pending > 0) await new Promise<void>((res) => waiters.push(res));
      if (failed) throw failed;
    },
    close: () => new Promise<void>((res) => producer.disconnect(() => res())),
  };
}

/** Reads one partition from an offset (read_committed) until `max` records or a quiet second. */
export async function readFrom(topic: string, partition: number, offset: number, brokers: string[], max = 1): Promise<import('@confluentinc/kafka-javascript').Message[]> {
  const consumer = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn(brokers)), 'group.id': `km-reader-${Date.now()}`, 'enable.auto.commit': false, 'isolation.level': 'read_committed' }, {});
  await new Promise<void>((res, rej) => consumer.connect({}, (err) => (err ? rej(err) : res())));
  consumer.assign([{ topic, partition, offset }]);
  const out: import('@confluentinc/kafka-javascript').Message[] = [];
  const deadline = Date.now() + 3_000;
  while (out.length < max && Date.now() < deadline) {
    const batch = await new Promise<import('@confluentinc/kafka-javascript').Message[]>((res, rej) => consumer.consume(max - out.length, (err, m) => (err ? rej(err) : res(m))));
    out.push(...batch);
  }
  await new Promise<void>((res) => consumer.disconnect(() => res()));
  return out;
}
