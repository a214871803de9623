import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTopicIdentity } from '@agenttrace/common';
import { consumeAll, createTopic, deleteTopic, eventually, makeEvent, produceRaw, startCluster, stopCluster, uniqueName } from '../../../test-support/stack.js';
import { KafmirrorError, Replicator, exitCodeFor, type ReplicatorOptions } from '../src/index.js';
import { decodeOffset, offsetKey } from '../src/state-topics.js';

/**
 * kafmirror's stored offsets (the offsets topic on the target) count in one source log: they
 * carry the source topic's id, and offsets of another log are refused instead of
 * silently skipping or repeating records. Own clusters (not mirror.test's) so the files can run
 * side by side; their controllers listen on port + 100.
 */
const SRC_NAME = `km-pos-src-${process.pid}`;
const DST_NAME = `km-pos-dst-${process.pid}`;
const SRC = ['127.0.0.1:23400'];
const DST = ['127.0.0.1:23600'];
const id = uniqueName('p').slice(2);
const sourceAlias = `pos-src-${id}`;
const targetAlias = `pos-dst-${id}`;
const offsetsTopic = `kafmirror.offsets.${sourceAlias}`;

function replicator(topics: string[], logs: string[] = []): Replicator {
  return new Replicator({
    source: { brokers: SRC },
    target: { brokers: DST },
    sourceAlias,
    targetAlias,
    topics,
    refreshIntervalMs: 60_000,
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
  } as ReplicatorOptions);
}

const events = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `s-${i % 3}`, value: JSON.stringify(makeEvent({ seq: i })), partition: 0 }));

beforeAll(async () => {
  await startCluster(SRC_NAME, 23400);
  await startCluster(DST_NAME, 23600);
}, 180_000);

afterAll(async () => {
  await stopCluster(SRC_NAME);
  await stopCluster(DST_NAME);
}, 120_000);

describe.sequential('kafmirror stored offsets name their source log', () => {
  const topic = uniqueName('km-pos');

  it('stores the source topic id with every offset', async () => {
    await createTopic(topic, 1, SRC);
    await produceRaw(topic, events(20), SRC);
    const r = replicator([topic]);
    await r.start();
    try {
      await consumeAll(topic, { brokers: DST, count: 20, timeoutMs: 30_000 });
    } finally {
      await r.close();
    }
    const ident = await describeTopicIdentity({ brokers: SRC }, topic);
    // Read to the end (the reader stops after 2 s without records): the last record is the current position.
    const stored = (await consumeAll(offsetsTopic, { brokers: DST, timeoutMs: 10_000 })).map((m) => decodeOffset(m.value));
    // The id as librdkafka reports it, checked against another client's reading of it.
    expect(stored.at(-1)).toMatchObject({ topic, partition: 0, next: 20, sourceTopicId: ident.topicId });
  }, 90_000);

  it('refuses offsets of a recreated source topic (exit 10) and mirrors nothing from them', async () => {
    await deleteTopic(topic, SRC);
    await eventually('the source topic is gone', async () => (await describeTopicIdentity({ brokers: SRC }, topic)).topicId === undefined, 30_000, 250);
    await createTopic(topic, 1, SRC);
    await produceRaw(topic, events(25), SRC);
    const r = replicator([topic]);
    const err = await r.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await r.close();
    expect(err).toBeInstanceOf(KafmirrorError);
    expect((err as KafmirrorError).code).toBe('POSITIONS_MISMATCH');
    expect((err as Error).message).toMatch(/belong to topic id [0-9a-f-]{36} \(another cluster, or the topic before it was recreated\), but on source cluster .* the topic has id [0-9a-f-]{36}: refusing/);
    expect(exitCodeFor(err)).toBe(10);
    // Still the 20 records of the first incarnation, none of the new one.
    const onTarget = await consumeAll(topic, { brokers: DST, count: 21, timeoutMs: 3000 });
    expect(onTarget).toHaveLength(20);
  }, 90_000);

  it('adopts offsets stored without ids when they fit, and refuses ones past the end', async () => {
    const other = uniqueName('km-pos-legacy');
    await createTopic(other, 1, SRC);
    await produceRaw(other, events(5), SRC);
    // As written by an earlier version: no ids.
    await produceRaw(offsetsTopic, [{ key: offsetKey(other, 0), value: JSON.stringify({ topic: other, partition: 0, next: 999 }) }], DST);
    const r1 = replicator([other]);
    const err = await r1.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await r1.close();
    expect((err as KafmirrorError).code).toBe('POSITIONS_MISMATCH');
    expect((err as Error).message).toMatch(/carry no topic id and partition 0 is stored at 999, past its end \(5\)/);

    await produceRaw(offsetsTopic, [{ key: offsetKey(other, 0), value: JSON.stringify({ topic: other, partition: 0, next: 2 }) }], DST);
    const logs: string[] = [];
    const r2 = replicator([other], logs);
    await r2.start();
    try {
      expect(logs.filter((l) => /adopted for this source/.test(l))).toHaveLength(1);
      const copied = await consumeAll(other, { brokers: DST, count: 3, timeoutMs: 30_000 });
      expect(copied).toHaveLength(3);
      await eventually('three records mirrored', () => r2.stats.records === 3, 10_000);
    } finally {
      await r2.close();
    }
    const ident = await describeTopicIdentity({ brokers: SRC }, other);
    const last = (await consumeAll(offsetsTopic, { brokers: DST, timeoutMs: 10_000 }))
      .map((m) => decodeOffset(m.value))
      .filter((o) => o?.topic === other)
      .at(-1);
    expect(last).toMatchObject({ next: 5, sourceTopicId: ident.topicId });
  }, 90_000);
});
