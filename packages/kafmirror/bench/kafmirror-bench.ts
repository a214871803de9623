/**
 * kafmirror against MirrorMaker 2 on the same two local clusters.
 *
 *   scripts/bench kafmirror [--records 200000] [--size 1024] [--partitions 20] [--runs 3]
 *                           [--rate 5000] [--lag-seconds 30] [--mm2-tasks 2] [--skip-mm2] [--keep-clusters]
 *
 * 1. Throughput: one backlog topic (records x size bytes, N partitions) on the source; each run
 *    mirrors all of it to a fresh target topic (a new source alias per run, prefix naming for both
 *    tools), counted by a read_committed consumer on the target. Figures: records/s from the first
 *    to the last mirrored record (start-up excluded), and the wall time including start-up.
 * 2. Lag: an empty topic, the mirror running, a producer at --rate events/s for --lag-seconds; a
 *    read_committed consumer on the target measures receive time - source timestamp per record.
 */
import Kafka from '@confluentinc/kafka-javascript';
import type { Message } from '@confluentinc/kafka-javascript';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rdkafkaConfig } from '@agenttrace/common';
import { createTopic, deleteTopic, kafkaConn, repoRoot, sleep, startCluster, stopCluster, uniqueName } from '../../../test-support/stack.js';
import { ClusterAdmin } from '../src/kafka-io.js';

const SRC = ['127.0.0.1:23092'];
const DST = ['127.0.0.1:24092'];
const CLI = join(repoRoot, 'packages', 'kafmirror', 'dist', 'cli.js');
const TOOLS = join(repoRoot, '.stack', 'jars', 'tools');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
const has = (name: string) => process.argv.includes(name);

const RECORDS = arg('--records', 200_000);
const SIZE = arg('--size', 1024);
const PARTITIONS = arg('--partitions', 20);
const RUNS = arg('--runs', 3);
const RATE = arg('--rate', 5_000);
const LAG_SECONDS = arg('--lag-seconds', 30);
const MM2_TASKS = arg('--mm2-tasks', 2);

const work = mkdtempSync(join(tmpdir(), 'kafmirror-bench-'));
const children = new Set<ChildProcess>();

function killAll(): void {
  // Only processes this benchmark started, by their pid.
  for (const c of children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
}
process.on('exit', killAll);
process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});

async function listTopics(brokers: string[]): Promise<string[]> {
  const admin = new ClusterAdmin({ role: 'target', alias: 'bench', conn: kafkaConn(brokers) });
  try {
    return await admin.listTopics();
  } finally {
    admin.close();
  }
}

async function produceBacklog(topic: string, count: number, size: number): Promise<void> {
  const producer = new Kafka.Producer({
    ...rdkafkaConfig(kafkaConn(SRC)),
    'enable.idempotence': true,
    dr_cb: true,
    'linger.ms': 20,
    'batch.size': 1_000_000,
    'queue.buffering.max.messages': 200_000,
  });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(10);
  let pending = count;
  const done = new Promise<void>((res) => producer.on('delivery-report', () => --pending === 0 && res()));
  const pad = 'x'.repeat(size);
  for (let i = 0; i < count; i++) {
    const value = Buffer.from(`{"event_id":"${i}","seq":${i},"pad":"${pad}"}`.slice(0, Math.max(size, 40)));
    for (;;) {
      try {
        producer.produce(topic, null, value, `session-${i % 997}`, Date.now());
        break;
      } catch {
        await sleep(5);
      }
    }
  }
  await done;
  await new Promise<void>((res) => producer.disconnect(() => res()));
}

/** Counts records on the target (read_committed) as they become visible. */
class TargetCounter {
  count = 0;
  firstAt: number | undefined;
  lastAt: number | undefined;
  latencies: number[] = [];
  #consumer: InstanceType<typeof Kafka.KafkaConsumer> | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;

  constructor(
    readonly topic: string,
    /** Records stamped before this are warm-up: counted, not measured. */
    public measureLatencyAfter?: number,
  ) {}

  async start(): Promise<void> {
    // Wait for the mirror to create the topic, with all its partitions.
    const admin = new ClusterAdmin({ role: 'target', alias: 'bench', conn: kafkaConn(DST) });
    let partitions = 0;
    try {
      for (let i = 0; i < 1200 && partitions < PARTITIONS; i++) {
        partitions = (await admin.describeTopics([this.topic]))[0]?.partitions ?? 0;
        if (partitions < PARTITIONS) await sleep(100);
      }
    } finally {
      admin.close();
    }
    if (partitions < PARTITIONS) throw new Error(`target topic ${this.topic} did not appear`);
    const consumer = new Kafka.KafkaConsumer(
      { ...rdkafkaConfig(kafkaConn(DST)), 'group.id': uniqueName('bench-counter'), 'enable.auto.commit': false, 'isolation.level': 'read_committed', 'fetch.wait.max.ms': 10 },
      {},
    );
    await new Promise<void>((res, rej) => consumer.connect({}, (err) => (err ? rej(err) : res())));
    consumer.setDefaultConsumeTimeout(50);
    // Return what is there at once: otherwise a batch keeps growing while records keep coming.
    (consumer as unknown as { setDefaultIsTimeoutOnlyForFirstMessage(v: boolean): void }).setDefaultIsTimeoutOnlyForFirstMessage(true);
    consumer.assign(Array.from({ length: partitions }, (_, p) => ({ topic: this.topic, partition: p, offset: -2 })));
    this.#consumer = consumer;
    this.#loop = (async () => {
      while (!this.#stopped) {
        const batch = await new Promise<Message[]>((res) => consumer.consume(10_000, (err, m) => res(err ? [] : m)));
        if (batch.length === 0) continue;
        const now = Date.now();
        this.firstAt ??= now;
        this.lastAt = now;
        this.count += batch.length;
        if (this.measureLatencyAfter !== undefined) {
          for (const m of batch) if ((m.timestamp ?? 0) >= this.measureLatencyAfter) this.latencies.push(now - (m.timestamp ?? now));
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    const c = this.#consumer;
    if (c) await new Promise<void>((res) => c.disconnect(() => res()));
  }
}

interface Mirror {
  child: ChildProcess;
  targetTopic: string;
  stop: () => Promise<void>;
}

function startKafmirror(topic: string, alias: string, extra: string[] = []): Mirror {
  const child = spawn(
    process.execPath,
    [CLI, 'replicate', '--source', SRC.join(','), '--source-alias', alias, '--target', DST.join(','), '--target-alias', `${alias}-dr`, '--topics', topic, '--naming', 'prefix', '-q', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  child.stderr!.pipe(createWriteStream(join(work, `kafmirror-${alias}.log`)));
  children.add(child);
  return { child, targetTopic: `${alias}.${topic}`, stop: () => stopChild(child) };
}

function startMirrorMaker(topic: string, alias: string): Mirror {
  const target = `${alias}dr`;
  const props = [
    `clusters = ${alias}, ${target}`,
    `${alias}.bootstrap.servers = ${SRC.join(',')}`,
    `${target}.bootstrap.servers = ${DST.join(',')}`,
    `${alias}->${target}.enabled = true`,
    `${alias}->${target}.topics = ${topic}`,
    `${target}->${alias}.enabled = false`,
    `tasks.max = ${MM2_TASKS}`,
    'replication.factor = 1',
    'checkpoints.topic.replication.factor = 1',
    'heartbeats.topic.replication.factor = 1',
    'offset-syncs.topic.replication.factor = 1',
    'offset.storage.replication.factor = 1',
    'status.storage.replication.factor = 1',
    'config.storage.replication.factor = 1',
    'sync.topic.acls.enabled = false',
    'refresh.topics.interval.seconds = 5',
    'emit.checkpoints.interval.seconds = 5',
  ].join('\n');
  const file = join(work, `mm2-${alias}.properties`);
  writeFileSync(file, `${props}\n`);
  const log4j = join(work, 'log4j2.properties');
  writeFileSync(log4j, 'rootLogger.level = WARN\nrootLogger.appenderRef.stdout.ref = STDOUT\nappender.stdout.type = Console\nappender.stdout.name = STDOUT\nappender.stdout.layout.type = PatternLayout\nappender.stdout.layout.pattern = %d %p %c{1} %m%n\n');
  const child = spawn('java', ['-Xmx768m', `-Dlog4j2.configurationFile=${log4j}`, '-cp', `${TOOLS}/*`, 'org.apache.kafka.connect.mirror.MirrorMaker', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = createWriteStream(join(work, `mm2-${alias}.log`));
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  children.add(child);
  return { child, targetTopic: `${alias}.${topic}`, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

interface ThroughputRun {
  recordsPerSec: number;
  mbPerSec: number;
  wallSec: number;
}

async function throughputRun(tool: 'kafmirror' | 'mm2', topic: string): Promise<ThroughputRun> {
  const alias = `b${uniqueName('').replace(/[^a-z0-9]/g, '').slice(-8)}`;
  const started = Date.now();
  const mirror = tool === 'kafmirror' ? startKafmirror(topic, alias) : startMirrorMaker(topic, alias);
  const counter = new TargetCounter(mirror.targetTopic);
  try {
    await counter.start();
    const deadline = Date.now() + 600_000;
    while (counter.count < RECORDS && Date.now() < deadline) {
      if (mirror.child.exitCode !== null) throw new Error(`${tool} exited with ${mirror.child.exitCode}`);
      await sleep(100);
    }
    if (counter.count < RECORDS) throw new Error(`${tool}: only ${counter.count} of ${RECORDS} records arrived`);
  } finally {
    await counter.stop();
    await mirror.stop();
  }
  const wallSec = (counter.lastAt! - started) / 1000;
  // Steady throughput: from the first visible record to the last one.
  const span = Math.max(1, counter.lastAt! - counter.firstAt!) / 1000;
  return { recordsPerSec: RECORDS / span, mbPerSec: (RECORDS * SIZE) / span / 1e6, wallSec };
}

async function lagRun(tool: 'kafmirror' | 'mm2'): Promise<{ p50: number; p99: number; max: number; samples: number; achievedRate: number }> {
  const topic = uniqueName('kmbench-lag');
  await createTopic(topic, PARTITIONS, SRC);
  const alias = `l${uniqueName('').replace(/[^a-z0-9]/g, '').slice(-8)}`;
  const mirror = tool === 'kafmirror' ? startKafmirror(topic, alias) : startMirrorMaker(topic, alias);
  const warmup = 5_000;
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn(SRC)), 'enable.idempotence': true, 'linger.ms': 5 });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(20);
  const pad = Buffer.alloc(SIZE, 'x');
  let counter: TargetCounter | undefined;
  let sent = 0;
  try {
    // The mirror creates the target topic from the (empty) source topic; the counter waits for it.
    const c = (counter = new TargetCounter(mirror.targetTopic, Date.now() + warmup));
    await c.start();
    const start = Date.now();
    c.measureLatencyAfter = start + warmup;
    const tickMs = 10;
    while (Date.now() - start < LAG_SECONDS * 1000) {
      const due = Math.floor(((Date.now() - start) * RATE) / 1000);
      while (sent < due) {
        producer.produce(topic, null, pad, `session-${sent % 997}`, Date.now());
        sent++;
      }
      await sleep(tickMs);
    }
    const until = Date.now() + 10_000;
    while (c.count < sent && Date.now() < until) await sleep(50);
    const elapsed = (Date.now() - start) / 1000;
    const lat = c.latencies.sort((a, b) => a - b);
    const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
    return { p50: q(0.5), p99: q(0.99), max: lat[lat.length - 1] ?? NaN, samples: lat.length, achievedRate: sent / Math.min(elapsed, LAG_SECONDS) };
  } finally {
    await new Promise<void>((res) => producer.disconnect(() => res()));
    await counter?.stop();
    await mirror.stop();
    await deleteTopic(topic, SRC);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error('build kafmirror first: npx tsc -b packages/kafmirror');
  const mm2 = !has('--skip-mm2');
  if (mm2 && (!existsSync(TOOLS) || !readdirSync(TOOLS).some((f) => f.startsWith('connect-mirror-')))) {
    throw new Error('MirrorMaker 2 jars missing: run scripts/stack fetch-tools (or pass --skip-mm2)');
  }
  process.stdout.write(`starting clusters mirror-src (23092) and mirror-dst (24092)\n`);
  await startCluster('mirror-src', 23092);
  await startCluster('mirror-dst', 24092);
  const before = { src: new Set(await listTopics(SRC)), dst: new Set(await listTopics(DST)) };
  try {
    const topic = uniqueName('kmbench');
    await createTopic(topic, PARTITIONS, SRC);
    const t0 = Date.now();
    await produceBacklog(topic, RECORDS, SIZE);
    process.stdout.write(`backlog: ${RECORDS} records x ${SIZE} B in ${PARTITIONS} partitions (${((Date.now() - t0) / 1000).toFixed(1)} s to produce)\n`);

    const results: Record<string, ThroughputRun[]> = { kafmirror: [], mm2: [] };
    for (let run = 1; run <= RUNS; run++) {
      for (const tool of mm2 ? (['kafmirror', 'mm2'] as const) : (['kafmirror'] as const)) {
        const r = await throughputRun(tool, topic);
        results[tool]!.push(r);
        process.stdout.write(`run ${run} ${tool.padEnd(9)}: ${Math.round(r.recordsPerSec).toLocaleString('en-US')} records/s, ${r.mbPerSec.toFixed(1)} MB/s, ${r.wallSec.toFixed(1)} s wall incl. start-up\n`);
      }
    }
    const km = median(results.kafmirror!.map((r) => r.recordsPerSec));
    process.stdout.write(`\nthroughput median: kafmirror ${Math.round(km).toLocaleString('en-US')} records/s`);
    if (mm2) {
      const m = median(results.mm2!.map((r) => r.recordsPerSec));
      process.stdout.write(`, MirrorMaker 2 ${Math.round(m).toLocaleString('en-US')} records/s, ratio ${(km / m).toFixed(2)}x (target >= 1.0x)`);
    }
    process.stdout.write('\n');

    for (const tool of mm2 ? (['kafmirror', 'mm2'] as const) : (['kafmirror'] as const)) {
      const l = await lagRun(tool);
      process.stdout.write(
        `lag at ${RATE}/s for ${LAG_SECONDS} s (${tool}): p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms over ${l.samples} records (achieved ${Math.round(l.achievedRate)}/s)${tool === 'kafmirror' ? ' (target p99 <= 1000 ms)' : ''}\n`,
      );
    }
  } finally {
    killAll();
    // Remove only what this benchmark created.
    for (const t of await listTopics(SRC).catch(() => [])) if (!before.src.has(t)) await deleteTopic(t, SRC);
    for (const t of await listTopics(DST).catch(() => [])) if (!before.dst.has(t)) await deleteTopic(t, DST);
    if (!has('--keep-clusters')) {
      await stopCluster('mirror-src');
      await stopCluster('mirror-dst');
    }
  }
  rmSync(work, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`kafmirror-bench: ${(err as Error).message} (logs of the mirrors are in ${work})\n`);
    process.exit(1);
  },
);
