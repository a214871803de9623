/**
 * Does archiving keep up with the live view? The archiver and the dashboard consumer drain the
 * same backlog on the same broker, one after the other, alternating, in one run:
 *   - dashboard consumer: from start() until every event is applied in Redis (offsets stored with
 *     the timelines), then close();
 *   - archiver: from start() until every event is read, then close(), which rolls the open files,
 *     uploads and commits them: every event durably in a Parquet object on S3.
 * Then `--scale 1,2,3` archivers in one group (each with its own encode workers) drain the backlog
 * together, to show what adding members gives on this machine.
 *
 *   scripts/bench archive-vs-live [--events 200000] [--partitions 20] [--rounds 5] [--scale 1,2,3]
 *
 * Prints events/s per round, medians and the ratio archiver / dashboard (target >= 1.0, issue #15).
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { Archiver } from '../src/index.js';
import { createTopic, deleteTopic, produceRaw, stack, uniqueName, dropRedisPrefix } from '../../../test-support/stack.js';
import { deletePrefix, highWatermarks, s3 } from '../test/helpers.js';
import { assertArchivedOnce, backlogRecords, median, storedOffsets } from './bench-support.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    partitions: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '5' },
    sessions: { type: 'string', default: '2000' },
    scale: { type: 'string', default: '1,2,3' },
  },
});
const N = Number(values.events);
const PARTITIONS = Number(values.partitions);
const ROUNDS = Number(values.rounds);
const SESSIONS = Number(values.sessions);
const SCALE = values.scale.split(',').map(Number).filter((k) => k > 0);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const topic = uniqueName('bench-avl');


/** The dashboard consumer's drain of the whole backlog, in events/s. */
async function dashboardRound(redis: Redis): Promise<number> {
  const prefix = `${uniqueName('bench-avl')}:`;
  const consumer = new DashboardConsumer({ kafka: { brokers: stack.brokers }, topic, group: uniqueName('bench-avl-dash'), redisUrl: stack.redisUrl, redisPrefix: prefix, dlqTopic: `${topic}.dlq`, alertsTopic: `${topic}.alerts`, metricsPort: false, alerts: false });
  const t0 = performance.now();
  try {
    await consumer.start();
    const deadline = Date.now() + 600_000;
    while (consumer.stats().applied + consumer.stats().duplicates < N) {
      if (Date.now() > deadline) throw new Error(`dashboard consumer applied ${consumer.stats().applied} of ${N} in 10 min`);
      await sleep(10);
    }
    await consumer.close();
    return N / ((performance.now() - t0) / 1000);
  } finally {
    await consumer.close().catch(() => undefined);
    await dropRedisPrefix(redis, prefix);
  }
}

const complete = (stored: Map<number, number>, high: Map<number, number>) => [...high].every(([p, h]) => (stored.get(p) ?? 0) === h);

/**
 * k archivers in one group drain the whole backlog to S3, in events/s (all of them together).
 * One archiver: until it has read everything, then close() (which uploads and commits the open
 * files). Several: partitions move while members join, and records read before a move are read
 * again by the new owner, so "read everything" means nothing; the run ends when the stored objects
 * hold every offset (files roll after 1 s, the listing is polled every 250 ms).
 */
async function archiverRound(k: number, high: Map<number, number>): Promise<number> {
  const prefix = uniqueName('bench-avl');
  const group = uniqueName('bench-avl-arch');
  const archivers = Array.from({ length: k }, () => new Archiver({
    kafka: { brokers: stack.brokers },
    topic,
    dlqTopic: `${topic}.dlq`,
    groupId: group,
    s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
    metricsPort: 0,
    ...(k > 1 ? { rollAgeMs: 1000 } : {}),
  }));
  const t0 = performance.now();
  try {
    await Promise.all(archivers.map((a) => a.start()));
    const deadline = Date.now() + 600_000;
    let secs: number;
    if (k === 1) {
      while (archivers[0]!.stats.consumed < N) {
        if (Date.now() > deadline) throw new Error(`the archiver read ${archivers[0]!.stats.consumed} of ${N} in 10 min`);
        await sleep(10);
      }
      await archivers[0]!.close();
      secs = (performance.now() - t0) / 1000;
    } else {
      while (!complete(await storedOffsets(prefix, topic), high)) {
        if (Date.now() > deadline) throw new Error(`${k} archivers did not store every offset in 10 min`);
        await sleep(250);
      }
      secs = (performance.now() - t0) / 1000;
    }
    await assertArchivedOnce(prefix, topic, high);
    return N / secs;
  } finally {
    await Promise.all(archivers.map((a) => a.close().catch(() => undefined)));
    await deletePrefix(s3(), prefix);
  }
}

async function main(): Promise<void> {
  const redis = new Redis(stack.redisUrl);
  try {
    await createTopic(topic, PARTITIONS);
    const records = backlogRecords(N, SESSIONS);
    const bytes = records.reduce((s, r) => s + String(r.value).length, 0);
    process.stdout.write(`backlog: ${N} events (${(bytes / 1e6).toFixed(0)} MB of JSON, ${SESSIONS} sessions) in ${PARTITIONS} partitions\n`);
    await produceRaw(topic, records);
    const high = await highWatermarks(topic, PARTITIONS);

    const dash: number[] = [];
    const arch: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which goes first, so neither always meets a warmer page cache or a busier broker.
      const order = r % 2 === 0 ? (['dashboard', 'archiver'] as const) : (['archiver', 'dashboard'] as const);
      for (const who of order) {
        const rate = who === 'dashboard' ? await dashboardRound(redis) : await archiverRound(1, high);
        (who === 'dashboard' ? dash : arch).push(rate);
        process.stdout.write(`round ${r + 1}: ${who.padEnd(9)} ${Math.round(rate)} events/s\n`);
      }
    }
    const scale: Array<[number, number[]]> = [];
    for (const k of SCALE) {
      const rates: number[] = [];
      for (let r = 0; r < Math.min(3, ROUNDS); r++) rates.push(await archiverRound(k, high));
      scale.push([k, rates]);
      process.stdout.write(`${k} archiver(s): ${rates.map((x) => Math.round(x)).join(', ')} events/s\n`);
    }

    process.stdout.write(`\nmachine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}; load average at the end ${loadavg()[0]!.toFixed(1)}\n`);
    process.stdout.write(`| consumer | events/s, median of ${ROUNDS} | min-max |\n|---|---|---|\n`);
    process.stdout.write(`| dashboard consumer (Redis) | ${Math.round(median(dash))} | ${Math.round(Math.min(...dash))}-${Math.round(Math.max(...dash))} |\n`);
    process.stdout.write(`| archiver (S3) | ${Math.round(median(arch))} | ${Math.round(Math.min(...arch))}-${Math.round(Math.max(...arch))} |\n`);
    process.stdout.write(`ratio archiver / dashboard: ${(median(arch) / median(dash)).toFixed(2)} (medians); per round: ${arch.map((a, i) => (a / dash[i]!).toFixed(2)).join(', ')}\n`);
    process.stdout.write(`\n| archivers in the group | events/s, median | runs |\n|---|---|---|\n`);
    for (const [k, rates] of scale) process.stdout.write(`| ${k} | ${Math.round(median(rates))} | ${rates.map((x) => Math.round(x)).join(', ')} |\n`);
  } finally {
    await Promise.all([deleteTopic(topic), deleteTopic(`${topic}.dlq`), deleteTopic(`${topic}.alerts`)]);
    await redis.quit();
  }
}

await main();
process.exit(0);
