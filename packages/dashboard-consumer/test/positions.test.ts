import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { join } from 'node:path';
import Kafka from '@confluentinc/kafka-javascript';
import { KafkaAdmin, describeTopicIdentity, rdkafkaConfig, redisKeys, type RedisKeys } from '@agenttrace/common';
import { createTopic, deleteTopic, eventually, kafkaConn, makeEvent, produceRaw, repoRoot, runNode, stack, startCluster, stopCluster, uniqueName } from '../../../test-support/stack.js';
import { DashboardConsumer, DashboardError, type DashboardConsumerOptions, type LogEntry } from '../src/index.js';
import { dropPrefix, testRedis } from './helpers.js';

/**
 * Offsets in Redis belong to one cluster and one incarnation of a topic. Two clusters with a
 * topic of the same name share one Redis here (a second stack, or the DR cluster after a
 * failover): the consumer pointed at the other one must refuse, or reset when asked, and never
 * count that cluster's records as redelivered duplicates.
 */
const OTHER_NAME = `dash-pos-${process.pid}`;
// Its controller listens on port + 100: both stay inside the range this suite may use.
const OTHER_PORT = 21092;
const bin = join(repoRoot, 'packages/dashboard-consumer/dist/cli.js');

let other: string[];
let redis: Redis;
const topic = uniqueName('dash-pos');
const group = uniqueName('dash-pos-g');
const prefix = `${uniqueName('dash-pos')}:`;
let k: RedisKeys;
const consumers: DashboardConsumer[] = [];

function records(session: string, n: number) {
  return Array.from({ length: n }, (_, seq) => ({
    key: session,
    value: JSON.stringify(makeEvent({ session_id: session, seq, event_type: seq === 0 ? 'session_start' : 'custom', payload: seq === 0 ? {} : { name: `step-${seq}` } })),
  }));
}

async function consumer(brokers: string[], logs: LogEntry[], extra: DashboardConsumerOptions = {}): Promise<DashboardConsumer> {
  const c = new DashboardConsumer({
    kafka: { brokers },
    topic,
    group,
    redisUrl: stack.redisUrl,
    redisPrefix: prefix,
    dlqTopic: `${topic}.dlq`,
    alertsTopic: `${topic}.alerts`,
    metricsPort: false,
    sessionTimeoutMs: 6000,
    alerts: false,
    onLog: (e) => logs.push(e),
    ...extra,
  });
  consumers.push(c);
  await c.start();
  return c;
}

const applied = async () => Object.values(await redis.hgetall(k.offsets(group, topic))).reduce((s, v) => s + Number(v), 0);

beforeAll(async () => {
  const info = await startCluster(OTHER_NAME, OTHER_PORT);
  other = [`127.0.0.1:${info.port}`];
  redis = testRedis();
  k = redisKeys(prefix);
  // The same topic name on both clusters, with more records on the main one: its offsets run
  // past everything the other cluster holds, which used to make every record there a "duplicate".
  await createTopic(topic, 3, stack.brokers);
  await createTopic(topic, 3, other);
  await produceRaw(topic, [...records('sess_main_1', 40), ...records('sess_main_2', 40)], stack.brokers);
  await produceRaw(topic, records('sess_other', 12), other);
}, 180_000);

afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close()));
  await dropPrefix(redis, prefix);
  redis.disconnect();
  await Promise.all([deleteTopic(topic), deleteTopic(`${topic}.dlq`), deleteTopic(`${topic}.alerts`)]);
  await stopCluster(OTHER_NAME);
}, 120_000);

describe.sequential('stored positions name their cluster and topic', () => {
  it('stamps the offsets with the cluster id and topic id of what it reads', async () => {
    const logs: LogEntry[] = [];
    const c = await consumer(stack.brokers, logs);
    await eventually('all 80 records of the main cluster applied', async () => (await applied()) === 80, 60_000, 200);
    const id = await describeTopicIdentity({ brokers: stack.brokers }, topic);
    expect(await redis.hgetall(k.offsetsOwner(group, topic))).toMatchObject({ cluster_id: id.clusterId, topic_id: id.topicId });
    expect(c.stats().applied).toBe(80);
    await c.close();
  }, 90_000);

  it('refuses to start on the other cluster, with one line naming both, and writes nothing', async () => {
    const mainId = await describeTopicIdentity({ brokers: stack.brokers }, topic);
    const otherId = await describeTopicIdentity({ brokers: other }, topic);
    expect(otherId.clusterId).not.toBe(mainId.clusterId);
    const before = await redis.hgetall(k.offsets(group, topic));
    const logs: LogEntry[] = [];
    const err = await consumer(other, logs).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DashboardError);
    expect((err as DashboardError).code).toBe('POSITIONS_MISMATCH');
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg).toContain(mainId.clusterId);
    expect(msg).toContain(otherId.clusterId);
    expect(msg).toContain('--reset-positions');
    expect(await redis.hgetall(k.offsets(group, topic))).toEqual(before);
    expect(await redis.exists(k.events('sess_other'))).toBe(0);
  }, 60_000);

  it('the CLI exits 10 with that one line', async () => {
    const r = await runNode(bin, ['--brokers', other.join(','), '--topic', topic, '--group', group, '--redis-url', stack.redisUrl, '--redis-prefix', prefix, '--metrics-port', 'off', '--no-alerts', '--start-timeout', '20'], {
      env: { ...process.env, AGENTTRACE_CONFIG: '' },
      timeoutMs: 60_000,
    });
    expect(r.code).toBe(10);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/belong to cluster .* but Kafka at .* is cluster /);
    expect(await redis.exists(k.events('sess_other'))).toBe(0);
  }, 90_000);

  it('with resetPositions it says so, starts from the earliest offset and applies everything, skipping nothing', async () => {
    // The main cluster's consumer is running when the other one takes the positions over.
    const mainLogs: LogEntry[] = [];
    const main = await consumer(stack.brokers, mainLogs);
    await eventually('the main consumer has its partitions', () => main.stats().assigned.length === 3, 30_000);
    const logs: LogEntry[] = [];
    const c = await consumer(other, logs, { resetPositions: 'earliest' });
    await eventually('the 12 records of the other cluster applied', () => c.stats().applied === 12, 60_000, 200);
    expect(c.stats().duplicates).toBe(0);
    expect(await redis.llen(k.events('sess_other'))).toBe(12);
    const warn = logs.filter((l) => l.level === 'warn' && /reset as asked/.test(l.message));
    expect(warn).toHaveLength(1);
    const otherId = await describeTopicIdentity({ brokers: other }, topic);
    expect(await redis.hgetall(k.offsetsOwner(group, topic))).toMatchObject({ cluster_id: otherId.clusterId, topic_id: otherId.topicId });

    // The main consumer's next write finds the positions taken: it stops loudly instead of writing.
    await produceRaw(topic, records('sess_main_3', 5), stack.brokers);
    await eventually('the main consumer stops', () => main.stats().halted !== undefined, 30_000, 100);
    expect(main.stats().halted).toMatch(/taken over by cluster/);
    expect(mainLogs.filter((l) => l.level === 'error' && /consumption stopped/.test(l.message))).toHaveLength(1);
    expect(await redis.exists(k.events('sess_main_3'))).toBe(0);
    expect(main.stats().duplicates).toBe(0);
    await Promise.all([c.close(), main.close()]);
  }, 120_000);

  it('a recreated topic (same name, new id) is refused like another cluster', async () => {
    // The positions now belong to the other cluster's topic: recreate it there.
    await deleteTopic(topic, other);
    await eventually('the topic is gone', async () => (await describeTopicIdentity({ brokers: other }, topic)).topicId === undefined, 30_000, 250);
    await createTopic(topic, 3, other);
    await produceRaw(topic, records('sess_other_2', 3), other);
    const err = await consumer(other, []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as DashboardError).code).toBe('POSITIONS_MISMATCH');
    expect((err as Error).message).toMatch(/topic id/);
  }, 90_000);

  it('adopts offsets stored without ids once, with a log line; refuses ones past the end of the topic', async () => {
    // As stored by the previous version: offsets only, no owner.
    await redis.del(k.offsets(group, topic), k.offsetsOwner(group, topic));
    await redis.hset(k.offsets(group, topic), { '0': '999999' });
    const err = await consumer(other, []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as DashboardError).code).toBe('POSITIONS_MISMATCH');
    expect((err as Error).message).toMatch(/no cluster or topic id .* past its end/);
    expect(await redis.exists(k.offsetsOwner(group, topic))).toBe(0);

    await redis.hset(k.offsets(group, topic), { '0': '0' });
    const logs: LogEntry[] = [];
    const c = await consumer(other, logs);
    expect(logs.filter((l) => /adopted them as cluster/.test(l.message))).toHaveLength(1);
    const otherId = await describeTopicIdentity({ brokers: other }, topic);
    expect(await redis.hgetall(k.offsetsOwner(group, topic))).toMatchObject({ cluster_id: otherId.clusterId, topic_id: otherId.topicId });
    await eventually('the recreated topic applied', () => c.stats().applied === 3, 60_000, 200);
    await c.close();
  }, 90_000);

  it('with resetPositions committed it starts at the group offsets committed on this cluster (as kafmirror failover sets them)', async () => {
    // The positions now belong to another log again (as a Redis shared with the primary would).
    await redis.del(k.offsets(group, topic));
    await redis.hset(k.offsetsOwner(group, topic), { cluster_id: 'the-primary', topic_id: 'its-topic' });
    await redis.hset(k.offsets(group, topic), { '0': '5000', '1': '5000', '2': '5000' });
    // Commit the group at the current end of every partition, then produce 4 records after it.
    const admin = new KafkaAdmin(kafkaConn(other));
    const ends = await admin.watermarks(topic, [0, 1, 2]).finally(() => admin.close());
    const committer = new Kafka.KafkaConsumer({ ...rdkafkaConfig(kafkaConn(other)), 'group.id': group, 'enable.auto.commit': false }, {});
    await new Promise<void>((res, rej) => committer.connect({}, (err) => (err ? rej(err) : res())));
    committer.commitSync([...ends].map(([partition, w]) => ({ topic, partition, offset: w.high })));
    await new Promise<void>((res) => committer.disconnect(() => res()));
    await produceRaw(topic, records('sess_other_3', 4), other);

    const logs: LogEntry[] = [];
    const c = await consumer(other, logs, { resetPositions: 'committed' });
    await eventually('the 4 records after the committed offsets applied', () => c.stats().applied === 4, 60_000, 200);
    expect(logs.filter((l) => /belong to cluster the-primary, topic id its-topic.*reset as asked.*group's committed offset/.test(l.message))).toHaveLength(1);
    expect(await redis.llen(k.events('sess_other_3'))).toBe(4);
    expect(c.stats().duplicates).toBe(0);
    await c.close();
  }, 90_000);
});
