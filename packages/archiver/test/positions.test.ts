import { afterAll, describe, expect, it } from 'vitest';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describeTopicIdentity } from '@agenttrace/common';
import { Archiver, hourStartOf, objectKey } from '../src/index.js';
import { META_CLUSTER_ID, META_TOPIC_ID } from '../src/archiver.js';
import { objectMetadata, listKeys } from '../src/s3-store.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { deletePrefix, s3 } from './helpers.js';

/**
 * Archive objects are named by offsets, and offsets only compare within one log. Objects carry
 * the cluster id and topic id they were cut from; the clean-up of overlapping leftovers removes
 * only objects of the same log (or unstamped ones, written before the stamps existed), never one
 * archived from another cluster (before a failover) or from an earlier incarnation of the topic.
 */
const client = s3();
const topic = uniqueName('arch-pos');
const prefix = uniqueName('arch-pos');
const hour = hourStartOf(Date.now()) - 2 * 3_600_000;
let archiver: Archiver | undefined;

afterAll(async () => {
  await archiver?.close().catch(() => undefined);
  await deletePrefix(client, prefix);
  await deleteTopic(topic);
  await deleteTopic(`${topic}.dlq`);
});

describe('archive objects name their log', () => {
  it('stamps objects with cluster and topic id, and keeps an overlapping object of another log', async () => {
    await createTopic(topic, 1);
    const records = Array.from({ length: 10 }, (_, i) => {
      const e = makeEvent({ session_id: 'sess_pos', seq: i, timestamp: new Date(hour + 60_000 + i * 1000).toISOString() });
      return { key: 'sess_pos', value: JSON.stringify(e) };
    });
    await produceRaw(topic, records);
    // A leftover in the same hour and partition whose offsets overlap the file to come (0..9),
    // archived from another cluster (stamped). Unstamped objects count as this log's: adopting or
    // refusing them is covered by adopt.test.ts.
    const foreign = objectKey(prefix, { topic, hourStart: hour, partition: 0, firstOffset: 0, lastOffset: 5 });
    await client.send(new PutObjectCommand({ Bucket: stack.s3Bucket, Key: foreign, Body: 'other log', Metadata: { [META_CLUSTER_ID]: 'some-other-cluster', [META_TOPIC_ID]: 'some-other-topic' } }));

    const logs: string[] = [];
    archiver = new Archiver({
      kafka: { brokers: stack.brokers },
      topic,
      dlqTopic: `${topic}.dlq`,
      groupId: uniqueName('arch-pos-group'),
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
      rollRows: 100,
      rollAgeMs: 1000,
      consumer: { 'session.timeout.ms': 10_000 },
      log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
    });
    await archiver.start();
    await eventually('the 10 records committed', () => archiver!.stats.committed[0] === 10, 45_000, 200);

    const mine = objectKey(prefix, { topic, hourStart: hour, partition: 0, firstOffset: 0, lastOffset: 9 });
    const keys = await listKeys(client, stack.s3Bucket, `${prefix}/`);
    expect(keys.sort()).toEqual([foreign, mine].sort());
    const ident = await describeTopicIdentity({ brokers: stack.brokers }, topic);
    expect(await objectMetadata(client, stack.s3Bucket, mine)).toMatchObject({ [META_CLUSTER_ID]: ident.clusterId, [META_TOPIC_ID]: ident.topicId });
    expect(logs.filter((l) => /kept an object whose offsets overlap/.test(l) && l.includes(foreign))).toHaveLength(1);
  }, 90_000);
});
