/**
 * End-to-end reliability: traced sessions flow tracer → Kafka → dashboard consumer (Redis) and
 * archiver (Parquet on S3) while faults are injected into processes this suite started. Every
 * emitted event id is then looked up in Redis and in the archive: lost, duplicated, reordered.
 * Figures go to .stack/reliability-results.jsonl (docs/reliability.md quotes them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shutdownTracing } from '@agenttrace/tracer';
import { KafkaAdmin } from '@agenttrace/common';
import { partitionForKey } from '@agenttrace/contract';
import {
  consumeAll,
  createTopic,
  eventually,
  repoRoot,
  nodePid,
  sleep,
  stack,
  assertPortFree,
  startCluster,
  startNode,
  stopCluster,
  uniqueName,
  type ClusterInfo,
} from '../test-support/stack.js';
import {
  archiverService,
  clearRedisPrefix,
  dashboardService,
  readArchive,
  readRedis,
  redisService,
  report,
  runWorkload,
  s3Service,
  scrape,
  tally,
  Service,
  type WorkloadResult,
} from './harness.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * "Never blocked": recording stays an enqueue while brokers are down. A call that waited on Kafka
 * would take a round trip or a retry backoff (tens of ms to seconds), so these bounds separate
 * blocking from scheduling noise: the test process shares 2 cores with brokers restarting, and a
 * p99 under 1 ms (usual here) failed once at 1.27 ms under CPU pressure from outside the machine's
 * own work. The hot path's own latency is measured by the tracer bench (p99 in microseconds).
 */
const NEVER_BLOCKED_P99_MS = 10;
/** The max allows for a GC pause of the test process on a loaded 2-core machine. */
const NEVER_BLOCKED_MAX_MS = 250;

interface Pipeline {
  topic: string;
  prefix: string;
  dashboard: Service;
  archiver: Service;
  redisUrl: string;
  s3: { bucket: string; endpoint: string };
}

function pipeline(brokers: string[], name: string, over: { redisUrl?: string; s3Endpoint?: string; metricsPort?: number } = {}): Pipeline {
  const topic = uniqueName(name);
  const prefix = `${topic}:`;
  const redisUrl = over.redisUrl ?? stack.redisUrl;
  const s3 = { bucket: stack.s3Bucket, endpoint: over.s3Endpoint ?? stack.s3Endpoint };
  const common = { brokers, topic, dlqTopic: `${topic}.dlq` };
  return {
    topic,
    prefix,
    redisUrl,
    s3,
    dashboard: dashboardService({ ...common, redisUrl, prefix, group: `${topic}-dashboard`, ...(over.metricsPort ? { metricsPort: over.metricsPort } : {}) }),
    archiver: archiverService({ ...common, s3Endpoint: s3.endpoint, bucket: s3.bucket, prefix: topic, group: `${topic}-archiver` }),
  };
}

/** Waits until Redis and the archive hold everything expected, then tallies both. */
async function verify(p: Pipeline, result: WorkloadResult, timeoutMs = 120_000) {
  const expected = [...result.emitted.values()].flat().filter((id) => !result.reportedFailed.has(id)).length;
  let redisTally = tally(result, new Map());
  await eventually(
    'Redis to hold every delivered event',
    async () => {
      redisTally = tally(result, await readRedis(p.redisUrl, p.prefix, result.emitted.keys()));
      return redisTally.found >= expected && redisTally.lost === 0;
    },
    timeoutMs,
    1000,
  ).catch(() => undefined);
  let archiveTally = tally(result, new Map());
  let files = 0;
  await eventually(
    'the archive to hold every delivered event',
    async () => {
      const a = await readArchive({ ...p.s3 }, p.topic);
      files = a.files;
      archiveTally = tally(result, a.perSession);
      return archiveTally.found >= expected && archiveTally.lost === 0;
    },
    timeoutMs,
    2000,
  ).catch(() => undefined);
  return { redis: redisTally, archive: archiveTally, files, expected };
}

async function teardown(p: Pipeline, failing = false): Promise<void> {
  // On a failing run, what the services said is the first thing to read.
  if (failing || process.env.AGENTTRACE_RELIABILITY_LOGS === '1') {
    process.stderr.write(`--- dashboard-consumer ---\n${p.dashboard.log}\n--- archiver ---\n${p.archiver.log}\n`);
  }
  await Promise.all([p.dashboard.stop(), p.archiver.stop()]);
  await clearRedisPrefix(p.redisUrl, p.prefix).catch(() => undefined);
}

afterAll(async () => {
  await shutdownTracing();
});

describe('single broker', () => {
  const name = uniqueName('rel-single');
  let cluster: ClusterInfo;
  let brokers: string[];

  beforeAll(async () => {
    cluster = await startCluster(name, 25092, 1);
    brokers = [`127.0.0.1:${cluster.port}`];
  });
  afterAll(() => stopCluster(name));

  it('scenario 1: broker SIGKILLed and restarted within the buffer window — 0 lost, 0 duplicated', async () => {
    const p = pipeline(brokers, 'rel1');
    await createTopic(p.topic, 8, brokers);
    p.dashboard.start();
    p.archiver.start();
    let killedAt = 0;
    let restarted: Promise<void> | undefined;
    let downMs = 0;
    const result = await runWorkload({
      kafka: { brokers },
      topic: p.topic,
      sessions: 20,
      eventsPerSession: 150,
      ratePerSec: 300,
      maxDurationMs: 60_000,
      sessionPrefix: `${p.topic}-s`,
      onProgress: (n) => {
        if (n >= 1000 && killedAt === 0) {
          killedAt = Date.now();
          process.kill(nodePid(cluster, 1), 'SIGKILL');
        }
        if (killedAt > 0 && !restarted && Date.now() - killedAt >= 3000) {
          restarted = startNode(name, 1).then(() => {
            downMs = Date.now() - killedAt;
          });
        }
      },
    });
    await restarted;
    const v = await verify(p, result);
    report('1 single broker SIGKILL + restart', { sent: v.expected, downMs, p99CallMs: result.p99CallMs, maxCallMs: result.maxCallMs, redis: v.redis, archive: v.archive });
    await teardown(p, v.redis.lost + v.archive.lost + v.redis.duplicated + v.archive.duplicated > 0);
    expect(result.reportedFailed.size).toBe(0);
    expect(result.closeErrors).toEqual([]);
    expect(v.redis).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
    expect(v.archive).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
    expect(result.p99CallMs).toBeLessThan(NEVER_BLOCKED_P99_MS);
    expect(result.maxCallMs).toBeLessThan(NEVER_BLOCKED_MAX_MS);
  }, 240_000);

  it('scenario 3: broker down longer than the buffer window — the agent gets the documented error; nothing unreported is missing', async () => {
    const p = pipeline(brokers, 'rel3');
    await createTopic(p.topic, 8, brokers);
    p.dashboard.start();
    p.archiver.start();
    let phase: 'before' | 'down' | 'up' = 'before';
    let restarted: Promise<void> | undefined;
    let downAt = 0;
    const result = await runWorkload({
      kafka: { brokers },
      topic: p.topic,
      sessions: 10,
      eventsPerSession: 300,
      ratePerSec: 200,
      maxDurationMs: 60_000,
      deliveryTimeoutMs: 3000,
      sessionPrefix: `${p.topic}-s`,
      onProgress: (n) => {
        if (phase === 'before' && n >= 300) {
          phase = 'down';
          downAt = Date.now();
          process.kill(nodePid(cluster, 1), 'SIGKILL');
        }
        // Down for 6 s: twice the delivery timeout.
        if (phase === 'down' && Date.now() - downAt >= 6000) {
          phase = 'up';
          restarted = startNode(name, 1);
        }
      },
    });
    // The workload outlives the outage; should it not, the broker still comes back before checking.
    await (restarted ?? startNode(name, 1));
    const v = await verify(p, result);
    const arrivedFailed = [...(await readRedis(p.redisUrl, p.prefix, result.emitted.keys())).values()].flat().filter((id) => result.reportedFailed.has(id));
    report('3 broker down longer than the buffer window', {
      sent: [...result.emitted.values()].flat().length,
      reportedFailed: result.reportedFailed.size,
      delivered: result.delivered,
      arrivedDespiteFailure: arrivedFailed.length,
      redis: v.redis,
      archive: v.archive,
    });
    await teardown(p, v.redis.lost + v.archive.lost + v.redis.duplicated + v.archive.duplicated > 0);
    expect(result.reportedFailed.size).toBeGreaterThan(0);
    expect(result.errors.some((e) => e.code === 'DELIVERY_FAILED')).toBe(true);
    expect(result.closeErrors.length).toBeGreaterThan(0);
    // The ~300 events recorded before the kill were delivered: otherwise every check below holds
    // of an empty set (as it did when the topic was not yet known to the broker at the kill).
    expect(result.delivered).toBeGreaterThan(0);
    // Everything not reported failed arrived, once. Beyond that, only events whose failure report
    // said the outcome was uncertain (sent, then the broker died before acknowledging) may be there.
    expect(v.redis).toMatchObject({ lost: 0, duplicated: 0, unknown: 0 });
    expect(v.redis.found).toBe(result.delivered + v.redis.arrivedDespiteFailure);
    expect(v.archive).toMatchObject({ lost: 0, duplicated: 0, unknown: 0 });
    expect(v.archive.found).toBe(result.delivered + v.archive.arrivedDespiteFailure);
    const uncertain = new Set(result.errors.filter((e) => /may still have written it/.test(e.message)).flatMap((e) => e.eventIds ?? []));
    for (const id of arrivedFailed) expect(uncertain.has(id), `${id} arrived although reported failed without saying the outcome was uncertain`).toBe(true);
  }, 240_000);

  it('scenario 4: dashboard consumer and archiver SIGKILLed repeatedly — 0 lost, 0 duplicated', async () => {
    const p = pipeline(brokers, 'rel4');
    await createTopic(p.topic, 8, brokers);
    p.dashboard.start();
    p.archiver.start();
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let nextKillAt = Date.now() + 1500;
    let kills = 0;
    const result = await runWorkload({
      kafka: { brokers },
      topic: p.topic,
      sessions: 30,
      eventsPerSession: 200,
      ratePerSec: 400,
      maxDurationMs: 60_000,
      sessionPrefix: `${p.topic}-s`,
      onProgress: async () => {
        if (kills >= 10 || Date.now() < nextKillAt) return;
        const victim = rand() < 0.5 ? p.dashboard : p.archiver;
        await victim.kill();
        kills++;
        await sleep(100 + Math.floor(rand() * 600));
        victim.start();
        nextKillAt = Date.now() + 800 + Math.floor(rand() * 1500);
      },
    });
    const v = await verify(p, result);
    report('4 consumer and archiver SIGKILLed repeatedly', {
      sent: v.expected,
      dashboardKills: p.dashboard.kills,
      archiverKills: p.archiver.kills,
      redis: v.redis,
      archive: v.archive,
      files: v.files,
    });
    await teardown(p, v.redis.lost + v.archive.lost + v.redis.duplicated + v.archive.duplicated > 0);
    expect(kills).toBeGreaterThanOrEqual(6);
    expect(v.redis).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
    expect(v.archive).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
  }, 240_000);

  it('scenario 5: Redis and the S3 server stopped for 30 s — 0 lost; lag rises and drains; metrics show it', async () => {
    const redisPort = 25379;
    const s3Port = 25568;
    const metricsPort = 25466;
    await assertPortFree(redisPort, "the suite's Redis");
    await assertPortFree(s3Port, "the suite's S3 server");
    await assertPortFree(metricsPort, "the dashboard consumer's metrics");
    const redis = redisService(redisPort);
    const s3 = s3Service(s3Port, stack.s3Bucket, mkdtempSync(join(tmpdir(), 'agenttrace-s3-')));
    redis.start();
    s3.start();
    await eventually('the suite\'s Redis and S3 to start', async () => (await fetch(`http://127.0.0.1:${s3Port}/`).then(() => true, () => false)) && redis.running, 20_000);
    await sleep(500);
    const p = pipeline(brokers, 'rel5', { redisUrl: `redis://127.0.0.1:${redisPort}`, s3Endpoint: `http://127.0.0.1:${s3Port}`, metricsPort });
    await createTopic(p.topic, 8, brokers);
    p.dashboard.start();
    p.archiver.start();
    const lagUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    let stoppedAt = 0;
    let maxLag = 0;
    let sawPaused = false;
    let sawRedisDown = false;
    let lastScrape = 0;
    let restartedAfterMs = 0;
    const result = await runWorkload({
      kafka: { brokers },
      topic: p.topic,
      sessions: 20,
      eventsPerSession: 450,
      ratePerSec: 200,
      maxDurationMs: 70_000,
      sessionPrefix: `${p.topic}-s`,
      onProgress: async (n) => {
        // Ten seconds in: the consumer has its partitions and is keeping up when Redis goes away.
        if (stoppedAt === 0 && n >= 2000) {
          stoppedAt = Date.now();
          await Promise.all([redis.kill(), s3.kill()]);
        }
        if (stoppedAt > 0 && !redis.running && Date.now() - stoppedAt >= 30_000) {
          redis.start();
          s3.start();
          restartedAfterMs = Date.now() - stoppedAt;
        }
        if (stoppedAt > 0 && redis.running === false && Date.now() - lastScrape > 1000) {
          lastScrape = Date.now();
          const [lag, isPaused, up] = await Promise.all([
            scrape(lagUrl, 'agenttrace_dashboard_consumer_lag'),
            scrape(lagUrl, 'agenttrace_dashboard_paused'),
            scrape(lagUrl, 'agenttrace_dashboard_redis_up'),
          ]);
          if (lag !== undefined) maxLag = Math.max(maxLag, lag);
          if (isPaused === 1) sawPaused = true;
          if (up === 0) sawRedisDown = true;
        }
      },
    });
    const v = await verify(p, result, 120_000);
    const drainedLag = await scrape(lagUrl, 'agenttrace_dashboard_consumer_lag');
    report('5 Redis and S3 stopped for 30 s', { sent: v.expected, outageMs: restartedAfterMs, maxLagDuringOutage: maxLag, sawPaused, sawRedisDown, lagAfter: drainedLag, redis: v.redis, archive: v.archive });
    await teardown(p, v.redis.lost + v.archive.lost + v.redis.duplicated + v.archive.duplicated > 0);
    await Promise.all([redis.stop(), s3.stop()]);
    expect(restartedAfterMs).toBeGreaterThanOrEqual(30_000);
    // The metrics show the outage (consumption paused, Redis down) and the lag it built up.
    expect(sawPaused || sawRedisDown).toBe(true);
    expect(maxLag).toBeGreaterThan(0);
    expect(drainedLag).toBe(0);
    expect(v.redis).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
    expect(v.archive).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
  }, 300_000);
});

describe('disaster-recovery copy', () => {
  const sourceName = uniqueName('rel-mirror-src');
  const targetName = uniqueName('rel-mirror-dst');
  let source: string[];
  let target: string[];

  beforeAll(async () => {
    source = [`127.0.0.1:${(await startCluster(sourceName, 25592, 1)).port}`];
    target = [`127.0.0.1:${(await startCluster(targetName, 25892, 1)).port}`];
  }, 120_000);
  afterAll(async () => {
    await stopCluster(sourceName);
    await stopCluster(targetName);
  });

  it('scenario 6: kafmirror SIGKILLed repeatedly while replicating — the target holds each event exactly once', async () => {
    const topic = uniqueName('rel6');
    await createTopic(topic, 8, source);
    const mirror = new Service('kafmirror', [
      join(repoRoot, 'packages/kafmirror/dist/cli.js'),
      'replicate',
      '--source', source.join(','),
      '--target', target.join(','),
      '--source-alias', 'primary',
      '--target-alias', 'dr',
      '--topics', topic,
      '--refresh-interval', '2s',
      '--quiet',
    ]);
    mirror.start();
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    let nextKillAt = Date.now() + 2000;
    let kills = 0;
    const result = await runWorkload({
      kafka: { brokers: source },
      topic,
      sessions: 20,
      eventsPerSession: 200,
      ratePerSec: 250,
      maxDurationMs: 60_000,
      sessionPrefix: `${topic}-s`,
      onProgress: async () => {
        if (kills >= 8 || Date.now() < nextKillAt) return;
        await mirror.kill();
        kills++;
        await sleep(100 + Math.floor(rand() * 400));
        mirror.start();
        nextKillAt = Date.now() + 500 + Math.floor(rand() * 800);
      },
    });
    const expected = [...result.emitted.values()].flat().length;
    let t = tally(result, new Map());
    let partitionsPreserved = true;
    await eventually(
      'the target to hold every event',
      async () => {
        const messages = await consumeAll(topic, { brokers: target, timeoutMs: 20_000, isolation: 'read_committed' });
        const perSession = new Map<string, string[]>();
        for (const m of [...messages].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
          const e = JSON.parse(m.value!.toString()) as { session_id: string; event_id: string };
          perSession.set(e.session_id, [...(perSession.get(e.session_id) ?? []), e.event_id]);
          if (m.partition !== partitionForKey(e.session_id, 8)) partitionsPreserved = false;
        }
        t = tally(result, perSession);
        return t.found >= expected;
      },
      120_000,
      3000,
    ).catch(() => undefined);
    report('6 kafmirror SIGKILLed repeatedly', { sent: expected, kills, target: t, partitionsPreserved });
    if (t.lost + t.duplicated > 0) process.stderr.write(`--- kafmirror ---\n${mirror.log}\n`);
    await mirror.stop();
    expect(kills).toBeGreaterThanOrEqual(6);
    expect(partitionsPreserved).toBe(true);
    expect(t).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
  }, 300_000);
});

describe('three brokers, replication factor 3, min.insync.replicas=2', () => {
  const name = uniqueName('rel-three');
  let cluster: ClusterInfo;
  let brokers: string[];

  beforeAll(async () => {
    cluster = await startCluster(name, 26092, 3);
    brokers = cluster.nodes.map((n) => `127.0.0.1:${n.port}`);
  }, 120_000);
  afterAll(() => stopCluster(name));

  it('scenario 2: one broker SIGKILLed mid-run, then the partition leader — 0 lost, 0 duplicated, agent never blocked', async () => {
    const p = pipeline(brokers, 'rel2');
    await createTopic(p.topic, 8, brokers, { 'min.insync.replicas': '2' });
    p.dashboard.start();
    p.archiver.start();
    const admin = new KafkaAdmin({ brokers });
    const events: string[] = [];
    let step = 0;
    let faults: Promise<void> | undefined;
    // Faults run beside the workload (never awaited by it), so the load keeps flowing through them.
    const injectFaults = async (kill: () => Promise<number>) => {
      const node = await kill();
      await sleep(2000);
      await startNode(name, node);
      events.push(`node ${node} back`);
    };
    const result = await runWorkload({
      kafka: { brokers },
      topic: p.topic,
      sessions: 20,
      eventsPerSession: 200,
      ratePerSec: 300,
      maxDurationMs: 90_000,
      sessionPrefix: `${p.topic}-s`,
      onProgress: (n) => {
        if (step === 0 && n >= 800) {
          step = 1;
          faults = injectFaults(async () => {
            process.kill(nodePid(cluster, 3), 'SIGKILL');
            events.push(`killed node 3 at ${n}`);
            return 3;
          });
        } else if (step === 1 && n >= 2400) {
          step = 2;
          const previous = faults;
          faults = (async () => {
            await previous;
            await injectFaults(async () => {
              // The current leader of partition 0.
              const described = await new Promise<Array<{ partitions: Array<{ partition: number; leader?: { id: number } | null }> }>>((resolve, reject) =>
                admin.client.describeTopics([p.topic], { timeout: 5000 }, (err, res) => (err ? reject(err) : resolve(res))),
              );
              const leader = described[0]!.partitions.find((x) => x.partition === 0)?.leader?.id ?? 1;
              process.kill(nodePid(cluster, leader), 'SIGKILL');
              events.push(`killed leader node ${leader} at ${n}`);
              return leader;
            });
          })();
        }
      },
    });
    await faults;
    admin.close();
    const v = await verify(p, result);
    report('2 three brokers, broker then leader SIGKILLed', { sent: v.expected, faults: events, p99CallMs: result.p99CallMs, maxCallMs: result.maxCallMs, redis: v.redis, archive: v.archive });
    await teardown(p, v.redis.lost + v.archive.lost + v.redis.duplicated + v.archive.duplicated > 0);
    expect(step).toBe(2);
    expect(result.reportedFailed.size).toBe(0);
    expect(v.redis).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
    expect(v.archive).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
    expect(result.p99CallMs).toBeLessThan(NEVER_BLOCKED_P99_MS);
    expect(result.maxCallMs).toBeLessThan(NEVER_BLOCKED_MAX_MS);
  }, 300_000);
});
