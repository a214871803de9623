import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeAll, createTopic, deleteTopic, eventually, kafkaConn, makeEvent, sleep, startCluster, stopCluster, uniqueName } from '../../../test-support/stack.js';
import { Replicator, describeTopicConfigs, readProvenance, type ReplicatorOptions } from '../src/index.js';
import { ClusterAdmin } from '../src/kafka-io.js';
import { DST, DST_NAME, DST_PORT, SRC, SRC_NAME, SRC_PORT, commitGroupOffsets, headerText, openProducer, produceExact, readFrom, runCli, spawnCli, type TimedRecord } from './helpers.js';

const cleanup: Array<{ topic: string; brokers: string[] }> = [];
const drop = (topic: string, brokers: string[]) => cleanup.push({ topic, brokers });

/** Unique cluster aliases per test, so transactional ids and state topics never collide. */
function aliases(): { sourceAlias: string; targetAlias: string } {
  const id = uniqueName('t').slice(2);
  const a = { sourceAlias: `src-${id}`, targetAlias: `dst-${id}` };
  drop(`kafmirror.offsets.${a.sourceAlias}`, DST);
  drop(`kafmirror.checkpoints.${a.sourceAlias}`, DST);
  return a;
}

function replicator(extra: Partial<ReplicatorOptions> & { topics?: string[] }, logs: string[] = []): Replicator {
  return new Replicator({
    source: { brokers: SRC },
    target: { brokers: DST },
    ...aliases(),
    refreshIntervalMs: 60_000,
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    ...extra,
  } as ReplicatorOptions);
}

async function topicPartitions(topic: string, brokers: string[]): Promise<number | undefined> {
  const admin = new ClusterAdmin({ role: 'target', alias: 't', conn: kafkaConn(brokers) });
  try {
    return (await admin.describeTopics([topic]))[0]?.partitions;
  } finally {
    admin.close();
  }
}

beforeAll(async () => {
  await startCluster(SRC_NAME, SRC_PORT);
  await startCluster(DST_NAME, DST_PORT);
}, 120_000);

afterAll(async () => {
  for (const { topic, brokers } of cleanup) await deleteTopic(topic, brokers).catch(() => undefined);
  await stopCluster(SRC_NAME);
  await stopCluster(DST_NAME);
}, 120_000);

describe.sequential('kafmirror against two real clusters', () => {
  it('mirrors key, value, headers, timestamp and partition, and creates the target topic like the source', async () => {
    const topic = uniqueName('km-basic');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 6, SRC, { 'retention.ms': '3600000', 'max.message.bytes': '2000000' });
    const base = Date.now() - 5 * 60_000;
    const records: TimedRecord[] = Array.from({ length: 300 }, (_, i): TimedRecord => ({
      key: i % 50 === 0 ? null : `session-${i % 13}`,
      value: JSON.stringify(makeEvent({ seq: i })),
      partition: i % 6,
      timestamp: base + i,
      headers: [{ 'agenttrace-schema-version': '1' }, { dup: `a${i}` }, { dup: `b${i}` }],
    }));
    await produceExact(topic, records, SRC);
    const r = replicator({ topics: [topic] });
    await r.start();
    try {
      const mirrored = await consumeAll(topic, { brokers: DST, count: 300, timeoutMs: 30_000 });
      expect(mirrored).toHaveLength(300);
      const source = await consumeAll(topic, { brokers: SRC, count: 300 });
      const bySource = new Map(source.map((m) => [`${m.partition}/${m.offset}`, m]));
      for (const m of mirrored) {
        const prov = readProvenance(m.headers);
        expect(prov).toMatchObject({ cluster: r.options.sourceAlias, topic, partition: m.partition });
        const orig = bySource.get(`${prov!.partition}/${prov!.offset}`)!;
        expect(orig).toBeDefined();
        expect(m.partition).toBe(orig.partition);
        expect(m.key?.toString() ?? null).toBe(orig.key?.toString() ?? null);
        expect(m.value?.equals(orig.value!)).toBe(true);
        expect(m.timestamp).toBe(orig.timestamp);
        const h = headerText(m.headers);
        expect(h.slice(0, 3)).toEqual(headerText(orig.headers));
        expect(h.slice(3).map(([k]) => k)).toEqual(['kafmirror-source-cluster', 'kafmirror-source-topic', 'kafmirror-source-partition', 'kafmirror-source-offset']);
      }
      expect(await topicPartitions(topic, DST)).toBe(6);
      const cfg = await describeTopicConfigs(kafkaConn(DST), topic);
      expect(cfg).toEqual({ configs: { 'retention.ms': '3600000', 'max.message.bytes': '2000000' } });
      expect(r.stats.records).toBe(300);
    } finally {
      await r.close();
    }
  }, 60_000);

  it('prefixes names with the source alias and picks up new topics and partitions matching a regex', async () => {
    const prefix = uniqueName('kmre');
    const [a, b, other] = [`${prefix}-a`, `${prefix}-b`, `${prefix}x-c`];
    const r = replicator({ topicsRegex: `${prefix}-.*`, naming: 'prefix', refreshIntervalMs: 300 });
    const ta = `${r.options.sourceAlias}.${a}`;
    const tb = `${r.options.sourceAlias}.${b}`;
    for (const t of [a, b, other]) drop(t, SRC);
    for (const t of [ta, tb]) drop(t, DST);
    await createTopic(a, 2, SRC);
    await createTopic(other, 1, SRC);
    await r.start();
    try {
      await produceExact(a, [{ key: 'k', value: 'a1', partition: 1, timestamp: Date.now() }], SRC);
      const first = await consumeAll(ta, { brokers: DST, count: 1, timeoutMs: 15_000 });
      expect(first.map((m) => [m.partition, m.value?.toString()])).toEqual([[1, 'a1']]);

      await createTopic(b, 3, SRC);
      await produceExact(b, [{ key: 'k', value: 'b1', partition: 2, timestamp: Date.now() }], SRC);
      const second = await eventually('new topic mirrored', async () => {
        const got = await consumeAll(tb, { brokers: DST, count: 1, timeoutMs: 2_000 });
        return got.length === 1 ? got : undefined;
      }, 20_000, 300);
      expect(second[0]!.partition).toBe(2);
      expect(await topicPartitions(tb, DST)).toBe(3);

      const admin = new ClusterAdmin({ role: 'source', alias: 's', conn: kafkaConn(SRC) });
      await admin.createPartitions(a, 4).finally(() => admin.close());
      await sleep(200);
      await produceExact(a, [{ key: 'k', value: 'a-p3', partition: 3, timestamp: Date.now() }], SRC);
      await eventually('new partition mirrored', async () => {
        const got = await consumeAll(ta, { brokers: DST, count: 2, timeoutMs: 2_000 });
        return got.some((m) => m.partition === 3 && m.value?.toString() === 'a-p3');
      }, 20_000, 300);
      expect(await topicPartitions(ta, DST)).toBe(4);
      expect(await topicPartitions(`${r.options.sourceAlias}.${other}`, DST)).toBeUndefined();
      expect(await topicPartitions(a, DST)).toBeUndefined();
    } finally {
      await r.close();
    }
  }, 60_000);

  it('never mirrors records back in an active-active pair', async () => {
    const topic = uniqueName('km-aa');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 2, SRC);
    await createTopic(topic, 2, DST);
    const id = uniqueName('aa').slice(3);
    const [east, west] = [`east-${id}`, `west-${id}`];
    drop(`kafmirror.offsets.${east}`, DST);
    drop(`kafmirror.offsets.${west}`, SRC);
    const log = () => undefined;
    const eastToWest = new Replicator({ source: { brokers: SRC }, target: { brokers: DST }, sourceAlias: east, targetAlias: west, topics: [topic], log });
    const westToEast = new Replicator({ source: { brokers: DST }, target: { brokers: SRC }, sourceAlias: west, targetAlias: east, topics: [topic], log });
    await Promise.all([eastToWest.start(), westToEast.start()]);
    try {
      const now = Date.now();
      await produceExact(topic, Array.from({ length: 50 }, (_, i) => ({ key: `e${i}`, value: `east-${i}`, partition: i % 2, timestamp: now })), SRC);
      await produceExact(topic, Array.from({ length: 30 }, (_, i) => ({ key: `w${i}`, value: `west-${i}`, partition: i % 2, timestamp: now })), DST);
      await eventually('both sides complete', async () => {
        const [e, w] = await Promise.all([consumeAll(topic, { brokers: SRC, count: 80, timeoutMs: 2_000 }), consumeAll(topic, { brokers: DST, count: 80, timeoutMs: 2_000 })]);
        return e.length >= 80 && w.length >= 80;
      }, 30_000, 300);
      await sleep(1_500); // a loop would keep copying in the meantime
      for (const brokers of [SRC, DST]) {
        const all = await consumeAll(topic, { brokers });
        const values = all.map((m) => m.value!.toString()).sort();
        expect(values).toHaveLength(80);
        expect(new Set(values).size).toBe(80);
      }
      expect(eastToWest.stats.records).toBe(50);
      expect(westToEast.stats.records).toBe(30);
      expect(eastToWest.stats.skipped).toBe(30);
      expect(westToEast.stats.skipped).toBe(50);
    } finally {
      await Promise.all([eastToWest.close(), westToEast.close()]);
    }
  }, 60_000);

  it('reports lag per partition on /metrics and raises and recovers a lag alert with a webhook', async () => {
    const topic = uniqueName('km-lag');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 2, SRC);
    const old = Date.now() - 60_000;
    await produceExact(topic, Array.from({ length: 400 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 2, timestamp: old + i })), SRC);
    const hooks: Array<Record<string, unknown>> = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hooks.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
    const logs: string[] = [];
    const r = replicator(
      { topics: [topic], lagThresholdMs: 5_000, webhookUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, maxBatchRecords: 2, lagIntervalMs: 100, metricsPort: 0 },
      logs,
    );
    await r.start();
    try {
      const alert = await eventually('lag alert', () => hooks.find((h) => h.event === 'kafmirror.lag_alert'), 20_000);
      expect(alert.lagMs as number).toBeGreaterThan(5_000);
      expect(alert.lagRecords as number).toBeGreaterThan(0);
      expect(alert).toMatchObject({ source: r.options.sourceAlias, target: r.options.targetAlias, thresholdMs: 5_000 });
      const recovered = await eventually('lag recovery', () => hooks.find((h) => h.event === 'kafmirror.lag_recovered'), 30_000);
      expect(recovered.lagMs as number).toBeLessThanOrEqual(5_000);
      expect(logs.some((l) => l.startsWith('warn replication lag') && l.includes('above the threshold'))).toBe(true);
      expect(logs.some((l) => l.startsWith('info replication lag recovered'))).toBe(true);
      const text = await (await fetch(`http://127.0.0.1:${r.metricsPort}/metrics`)).text();
      const metric = (name: string, labels: string) => new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text)?.[1];
      expect(metric('agenttrace_kafmirror_records_replicated_total', `topic="${topic}"`)).toBe('400');
      for (const p of [0, 1]) {
        expect(metric('agenttrace_kafmirror_lag_records', `topic="${topic}",partition="${p}"`)).toBe('0');
        expect(metric('agenttrace_kafmirror_lag_seconds', `topic="${topic}",partition="${p}"`)).toBe('0');
      }
      expect(text).toMatch(/agenttrace_kafmirror_lag_alert 0/);
      expect(text).toMatch(/agenttrace_kafmirror_replication_latency_seconds_count 400/);
      const snap = r.lag()!;
      expect(snap.partitions.map((p) => p.partition).sort()).toEqual([0, 1]);
    } finally {
      await r.close();
      await new Promise<void>((res) => server.close(() => res()));
    }
  }, 60_000);

  it('writes a last checkpoint when closed, so a failover right after a clean stop resumes where the group was', async () => {
    const topic = uniqueName('km-closecp');
    const group = uniqueName('session-dashboard');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 1, SRC);
    await produceExact(topic, Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: 0, timestamp: Date.now() })), SRC);
    await commitGroupOffsets(group, topic, new Map([[0, 10]]), SRC);
    // No periodic checkpoint during the test: only start-up's and close()'s can be written.
    const r = replicator({ topics: [topic], groups: [group], checkpointIntervalMs: 3_600_000 });
    await r.start();
    try {
      await consumeAll(topic, { brokers: DST, count: 50, timeoutMs: 30_000 });
      // The group moves on after the last checkpoint; the stop must record where it is now.
      await commitGroupOffsets(group, topic, new Map([[0, 40]]), SRC);
    } finally {
      await r.close();
    }
    const dry = await runCli(['failover', '--source', r.options.sourceAlias, '--target', DST.join(','), '--group', group, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    const offsets = (JSON.parse(dry.stdout) as { groups: Array<{ offsets: Array<{ sourceOffset: number; targetOffset: number }> }> }).groups[0]!.offsets;
    expect(offsets.map((o) => o.sourceOffset)).toEqual([40]);
    expect(readProvenance((await readFrom(topic, 0, offsets[0]!.targetOffset, DST))[0]?.headers)?.offset).toBe(40);
  }, 90_000);

  it('translates consumer-group offsets exactly and fails the group over with the CLI', async () => {
    const topic = uniqueName('km-fo');
    const group = uniqueName('session-dashboard');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 3, SRC);
    await produceExact(topic, Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 3, timestamp: Date.now() })), SRC);
    // The group has read part of each partition on the source.
    const committed = new Map([
      [0, 37],
      [1, 100],
      [2, 55],
    ]);
    await commitGroupOffsets(group, topic, committed, SRC);

    // Small transactions put a commit marker after every batch: target offsets drift from source offsets.
    const r = replicator({ topics: [topic], groups: [group], maxBatchRecords: 7, checkpointIntervalMs: 200 });
    await r.start();
    try {
      await consumeAll(topic, { brokers: DST, count: 300, timeoutMs: 30_000 });
      await eventually('checkpoints for every partition', () => r.metrics.checkpoints.get().then((m) => (m.values[0]?.value ?? 0) >= 3), 15_000, 200);
    } finally {
      await r.close();
    }
    const dry = await runCli(['failover', '--source', r.options.sourceAlias, '--target', DST.join(','), '--group', group, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout).groups[0].committed).toBe(false);
    const run = await runCli(['failover', '--source', r.options.sourceAlias, '--target', DST.join(','), '--group', group]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`committed offsets of group "${group}"`);

    const admin = new ClusterAdmin({ role: 'target', alias: 't', conn: kafkaConn(DST) });
    const onTarget = await admin.groupOffsets(group).finally(() => admin.close());
    const translated = onTarget.get(topic)!;
    expect([...translated.keys()].sort()).toEqual([0, 1, 2]);
    let drifted = 0;
    for (const [p, sourceOffset] of committed) {
      const t = translated.get(p)!;
      if (t !== sourceOffset) drifted++;
      const next = await readFrom(topic, p, t, DST);
      if (sourceOffset >= 100) {
        expect(next).toHaveLength(0); // the group had read everything: nothing left on the target either
      } else {
        // The first record the failed-over consumer reads is the copy of the first one it had not read.
        expect(readProvenance(next[0]?.headers)?.offset).toBe(sourceOffset);
      }
    }
    expect(drifted).toBeGreaterThan(0);
  }, 60_000);

  it('after a restart, translates offsets of records an earlier run mirrored, from the copy itself', async () => {
    const topic = uniqueName('km-cp-restart');
    const group = uniqueName('archiver');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 2, SRC);
    await produceExact(topic, Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 2, timestamp: Date.now() })), SRC);
    const names = aliases();
    // The first run mirrors everything, with small transactions so target offsets drift.
    const first = replicator({ ...names, topics: [topic], maxBatchRecords: 7 });
    await first.start();
    try {
      await consumeAll(topic, { brokers: DST, count: 200, timeoutMs: 30_000 });
    } finally {
      await first.close();
    }
    // Only now does the group commit: offsets the second run never mirrors itself.
    const committed = new Map([
      [0, 41],
      [1, 100],
    ]);
    await commitGroupOffsets(group, topic, committed, SRC);

    const second = replicator({ ...names, topics: [topic], groups: [group], checkpointIntervalMs: 200 });
    await second.start();
    try {
      await eventually('checkpoints for both partitions', () => second.metrics.checkpoints.get().then((m) => (m.values[0]?.value ?? 0) >= 2), 20_000, 200);
    } finally {
      await second.close();
    }
    const run = await runCli(['failover', '--source', names.sourceAlias, '--target', DST.join(','), '--group', group]);
    expect(run.code).toBe(0);
    const admin = new ClusterAdmin({ role: 'target', alias: 't', conn: kafkaConn(DST) });
    const translated = (await admin.groupOffsets(group).finally(() => admin.close())).get(topic)!;
    // Partition 0: the first record the failed-over consumer reads is the copy of source offset 41.
    const next = await readFrom(topic, 0, translated.get(0)!, DST);
    expect(readProvenance(next[0]?.headers)?.offset).toBe(41);
    expect(translated.get(0)).not.toBe(41); // markers make target offsets drift
    // Partition 1: the group had read everything, so nothing is left for it on the target.
    expect(await readFrom(topic, 1, translated.get(1)!, DST)).toHaveLength(0);
  }, 90_000);

  it('delivers every record exactly once although kafmirror is SIGKILLed again and again under load', async () => {
    const topic = uniqueName('km-crash');
    drop(topic, SRC);
    drop(topic, DST);
    await createTopic(topic, 4, SRC);
    // Transactions stay open 300 ms (--batch-linger) while records arrive every 250 ms, so most
    // kills land inside an open transaction with records already written to the target.
    const { sourceAlias, targetAlias } = aliases();
    // The design's command shape: clusters by alias from a config file.
    const config = join(mkdtempSync(join(tmpdir(), 'kafmirror-test-')), 'clusters.json');
    writeFileSync(config, JSON.stringify({ clusters: { [sourceAlias]: { brokers: SRC }, [targetAlias]: { brokers: DST } } }));
    const args = ['replicate', '--config', config, '--source', sourceAlias, '--target', targetAlias, '--topics', topic, '--lag-threshold', '10s', '--max-batch', '500', '--batch-linger', '300ms', '--progress-interval', '1s', '--json'];
    const TOTAL = 3_000;
    const ids: string[] = [];
    const producer = await openProducer(SRC);
    let produced = 0;
    const load = (async () => {
      // About 20 s of steady load in small chunks, so kills land mid-stream.
      for (let chunk = 0; produced < TOTAL && chunk < 200; chunk++) {
        const records = Array.from({ length: 40 }, () => {
          const e = makeEvent({ session_id: `sess-${produced % 17}`, seq: produced++ });
          ids.push(e.event_id);
          return { key: e.session_id, value: JSON.stringify(e) };
        });
        await producer.send(topic, records);
        await sleep(250);
      }
    })();

    let kills = 0;
    let run = spawnCli(args);
    const started = Date.now();
    try {
      // SIGKILL at random moments (during start-up, mid-transaction, idle), a bounded number of times.
      while (kills < 7 && Date.now() - started < 45_000) {
        await sleep(1_000 + Math.random() * 3_000);
        run.child.kill('SIGKILL');
        const { signal } = await run.exited;
        expect(signal).toBe('SIGKILL');
        kills++;
        run = spawnCli(args);
      }
      await load;
      const mirrored = await consumeAll(topic, { brokers: DST, count: TOTAL, timeoutMs: 60_000 });
      expect(mirrored.length).toBe(TOTAL);
      await sleep(1_500);
    } finally {
      await producer.close();
      run.child.kill('SIGTERM');
    }
    const { code } = await run.exited;
    expect(code).toBe(0);

    const all = await consumeAll(topic, { brokers: DST, isolation: 'read_committed' });
    const raw = await consumeAll(topic, { brokers: DST, isolation: 'read_uncommitted' });
    // Copies left by killed transactions: present in the log, invisible to read_committed readers.
    console.info(`crash test: ${kills} SIGKILLs, ${raw.length - all.length} aborted copies on the target`);
    const seen = new Map<string, number>();
    for (const m of all) {
      const id = (JSON.parse(m.value!.toString()) as { event_id: string }).event_id;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    expect(kills).toBeGreaterThanOrEqual(6);
    // At least one kill hit an open transaction with copies already written (else the test proves little).
    expect(raw.length).toBeGreaterThan(all.length);
    expect(ids).toHaveLength(TOTAL);
    expect(all).toHaveLength(TOTAL);
    expect(ids.filter((id) => seen.get(id) !== 1)).toEqual([]);
    // Per partition, the copies follow the source order (so per-session order holds).
    const lastByPartition = new Map<number, number>();
    for (const m of all) {
      const offset = readProvenance(m.headers)!.offset;
      expect(offset).toBeGreaterThan(lastByPartition.get(m.partition) ?? -1);
      lastByPartition.set(m.partition, offset);
    }
  }, 150_000);
});
