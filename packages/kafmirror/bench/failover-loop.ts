/**
 * A bounded crash loop of `kafmirror failover` against real clusters (issue #14: one run in 17
 * once died with SIGSEGV, exit 139, and no output).
 *
 *   scripts/bench failover-loop [--runs 300] [--load 2] [--port 19790] [--controller-port 19795]
 *                               [--timeout-ms 60000] [--keep-cluster] [--cli packages/kafmirror/dist/cli.js]
 *
 * Set-up as packages/kafmirror/test/mirror.test.ts does it: a topic with a consumer group's
 * committed offsets on the source (the stack's "main" cluster), `kafmirror` replicating it with
 * --groups to a target cluster of its own (started on --port) until checkpoints exist. Then the
 * built binary runs `failover` --runs times in a row, cycling through the paths that open and
 * tear down native clients: a dry run (--json), a real commit, and a group without checkpoints
 * (expected to fail with its exit code). --load N starts N busy loops beside it (bounded by the
 * loop's own lifetime, killed by pid). Every run's exit code or signal is counted; any run that
 * ends by a signal or with an exit code other than the expected one is printed with its output.
 */
import Kafka from '@confluentinc/kafka-javascript';
import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { rdkafkaConfig } from '@agenttrace/common';
import { createTopic, deleteTopic, kafkaConn, repoRoot, sleep, stack, startCluster, stopCluster, uniqueName } from '../../../test-support/stack.js';
import { Replicator } from '../src/index.js';
import { EXIT_CODES } from '../src/errors.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a whole number, got "${process.argv[i + 1]}"`);
  return v;
}

const RUNS = arg('--runs', 300);
const LOAD = arg('--load', 0);
const PORT = arg('--port', 19790);
const CONTROLLER_PORT = arg('--controller-port', PORT + 5);
const TIMEOUT_MS = arg('--timeout-ms', 60_000);
const CLUSTER = 'failover-loop';
const DST = [`127.0.0.1:${PORT}`];
const SRC = stack.brokers;
function textArg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
/** --cli runs another build of kafmirror (e.g. an older one, to compare). */
const CLI = textArg('--cli', join(repoRoot, 'packages', 'kafmirror', 'dist', 'cli.js'));

const children = new Set<ChildProcess>();
function killChildren(): void {
  // Only processes this loop started, by their pid.
  for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
}
process.on('exit', killChildren);
process.on('SIGINT', () => {
  killChildren();
  process.exit(130);
});

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  output: string;
}

function runFailover(args: string[]): Promise<Outcome> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, 'failover', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, ms: Date.now() - started, output });
    });
  });
}

async function commitGroupOffsets(group: string, topic: string, committed: Map<number, number>): Promise<void> {
  const c = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn(SRC)), 'group.id': group, 'enable.auto.commit': false }, {});
  await new Promise<void>((res, rej) => c.connect({}, (err) => (err ? rej(err) : res())));
  c.commitSync([...committed].map(([partition, offset]) => ({ topic, partition, offset })));
  await new Promise<void>((res) => c.disconnect(() => res()));
}

async function produce(topic: string, count: number, partitions: number): Promise<void> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn(SRC)), dr_cb: true, 'linger.ms': 5 });
  await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
  producer.setPollInterval(10);
  let pending = count;
  const done = new Promise<void>((res) => producer.on('delivery-report', () => --pending === 0 && res()));
  for (let i = 0; i < count; i++) producer.produce(topic, i % partitions, Buffer.from(`v${i}`), `k${i}`);
  await done;
  await new Promise<void>((res) => producer.disconnect(() => res()));
}

const percentile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;

async function main(): Promise<void> {
  await startCluster(CLUSTER, PORT, 1, ['--controller-port', String(CONTROLLER_PORT)]);
  const topic = uniqueName('fo-loop');
  const group = uniqueName('fo-loop-group');
  const sourceAlias = `src-${uniqueName('a').slice(2)}`;
  const busy: ChildProcess[] = [];
  try {
    await createTopic(topic, 3, SRC);
    await produce(topic, 300, 3);
    await commitGroupOffsets(group, topic, new Map([[0, 37], [1, 100], [2, 55]]));
    const r = new Replicator({ source: { brokers: SRC }, target: { brokers: DST }, sourceAlias, targetAlias: 'loop-dst', topics: [topic], groups: [group], maxBatchRecords: 7, checkpointIntervalMs: 200, refreshIntervalMs: 60_000, log: () => undefined });
    await r.start();
    try {
      const until = Date.now() + 60_000;
      while (((await r.metrics.checkpoints.get()).values[0]?.value ?? 0) < 3) {
        if (Date.now() > until) throw new Error('no checkpoints for all 3 partitions within 60 s');
        await sleep(200);
      }
    } finally {
      await r.close();
    }
    for (let i = 0; i < LOAD; i++) {
      const b = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
      children.add(b);
      busy.push(b);
    }
    const kinds = [
      { name: 'dry run', args: ['--source', sourceAlias, '--target', DST.join(','), '--group', group, '--dry-run', '--json'], expect: EXIT_CODES.ok },
      { name: 'commit', args: ['--source', sourceAlias, '--target', DST.join(','), '--group', group], expect: EXIT_CODES.ok },
      { name: 'no checkpoints', args: ['--source', sourceAlias, '--target', DST.join(','), '--group', `${group}-none`], expect: undefined },
    ];
    const counts = new Map<string, number>();
    const durations: number[] = [];
    const unexpected: string[] = [];
    let expectedFailureCode: number | undefined;
    const loads: number[] = [];
    const started = Date.now();
    for (let i = 0; i < RUNS; i++) {
      const kind = kinds[i % kinds.length]!;
      const o = await runFailover(kind.args);
      durations.push(o.ms);
      loads.push(loadavg()[0]!);
      const key = o.signal ? `signal ${o.signal}` : `exit ${o.code}`;
      counts.set(`${kind.name}: ${key}`, (counts.get(`${kind.name}: ${key}`) ?? 0) + 1);
      // The failing kind's code is learnt from its first run; a signal or a change is unexpected.
      if (kind.expect === undefined && o.signal === null && o.code !== 0) expectedFailureCode ??= o.code ?? undefined;
      const want = kind.expect ?? expectedFailureCode;
      if (o.signal !== null || o.code !== want) {
        unexpected.push(`run ${i + 1} (${kind.name}): ${key} after ${o.ms} ms\n${o.output.trim() || '(no output)'}`);
        process.stdout.write(`UNEXPECTED ${unexpected.at(-1)}\n`);
      }
      if ((i + 1) % 25 === 0) process.stdout.write(`${i + 1}/${RUNS} runs, ${unexpected.length} unexpected, load ${loadavg()[0]!.toFixed(1)}\n`);
    }
    process.stdout.write(
      [
        `failover loop: ${RUNS} runs in ${Math.round((Date.now() - started) / 1000)} s, ${LOAD} busy loop(s) beside it`,
        ...[...counts].sort().map(([k, n]) => `  ${k}: ${n}`),
        `  duration per run: p50 ${percentile(durations, 0.5)} ms, p99 ${percentile(durations, 0.99)} ms, max ${Math.max(...durations)} ms`,
        `  1-minute load average during the runs: min ${Math.min(...loads).toFixed(1)}, median ${percentile(loads, 0.5).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}`,
        `  unexpected outcomes (a signal, or another exit code): ${unexpected.length}`,
      ].join('\n') + '\n',
    );
    if (unexpected.length > 0) process.exitCode = 1;
  } finally {
    for (const b of busy) if (b.pid && b.exitCode === null && b.signalCode === null) process.kill(b.pid, 'SIGKILL');
    await deleteTopic(topic, SRC).catch(() => undefined);
    if (!process.argv.includes('--keep-cluster')) await stopCluster(CLUSTER);
  }
}

await main();
