import { afterAll, describe, expect, it } from 'vitest';
import { ArchiverError } from '../src/errors.js';
import { DLQ_TRUNCATE_BYTES } from '@agenttrace/common';
import { Archiver, nextDlqValueLength } from '../src/index.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, startCluster, stopCluster, uniqueName } from '../../../test-support/stack.js';
import { allCommitted, deletePrefix, downloadPrefix, duck, highWatermarks, s3 } from './helpers.js';
import { rmSync } from 'node:fs';

const client = s3();
/** First client port of the archiver suite's clusters (docs/development.md). */
const CLUSTER_PORT = 22092;
const clusterName = 'archiver-start';
let clusterStarted = false;
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  if (clusterStarted) await stopCluster(clusterName);
});

describe('dead-letter fallbacks', () => {
  it('shrinks a value the DLQ cannot hold: the head first, then nothing', () => {
    expect(nextDlqValueLength(2_000_000, undefined)).toBe(DLQ_TRUNCATE_BYTES);
    expect(nextDlqValueLength(2_000_000, DLQ_TRUNCATE_BYTES)).toBe(0);
    expect(nextDlqValueLength(2_000_000, 0)).toBeUndefined();
    expect(nextDlqValueLength(500, undefined)).toBe(0);
    expect(nextDlqValueLength(0, undefined)).toBeUndefined();
  });

  it('skips bad records the dead-letter topic refuses whatever their size, and keeps archiving the partition', async () => {
    const topic = uniqueName('arch-giveup');
    const dlqTopic = `${topic}.dlq`;
    const prefix = uniqueName('arch-giveup');
    // A DLQ topic that cannot hold even a record without a value (its headers alone are larger).
    await createTopic(topic, 1);
    await createTopic(dlqTopic, 1, stack.brokers, { 'max.message.bytes': '120' });
    cleanups.push(() => deleteTopic(topic), () => deleteTopic(dlqTopic), () => deletePrefix(client, prefix));
    const session = `sess_giveup_${prefix}`;
    const records = [];
    for (let i = 0; i < 20; i++) {
      records.push({ key: session, value: JSON.stringify(makeEvent({ session_id: session, seq: i })) });
      if (i % 7 === 3) records.push({ key: session, value: `{broken ${i}` });
    }
    await produceRaw(topic, records);
    const archiver = new Archiver({
      kafka: { brokers: stack.brokers },
      topic,
      dlqTopic,
      groupId: uniqueName('arch-giveup-group'),
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
      rollRows: 8,
      rollAgeMs: 500,
      retryMinMs: 50,
      retryMaxMs: 200,
      // The other tests run the default worker pool; this one covers encoding on the main thread.
      encodeWorkers: 0,
      consumer: { 'session.timeout.ms': 10_000 },
    });
    await archiver.start();
    cleanups.push(() => archiver.close());
    const high = await highWatermarks(topic, 1);
    await eventually('the partition committed past the refused records', () => allCommitted(archiver.stats.committed, high), 30_000, 200);
    await archiver.close();
    expect(archiver.stats).toMatchObject({ dlq: 0, dlqGivenUp: 3 });
    const { dir } = await downloadPrefix(client, prefix);
    try {
      const [row] = await duck(`SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS d FROM read_parquet('${dir}/**/*.parquet')`);
      expect(row).toEqual({ n: 20, d: 20 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('start-up against an unavailable Kafka', () => {
  it('gives up with CONSUMER_FAILED once the start timeout ran out, after retrying', async () => {
    const warnings: string[] = [];
    const archiver = new Archiver({
      kafka: { brokers: [`127.0.0.1:${CLUSTER_PORT + 50}`] },
      topic: uniqueName('arch-nokafka'),
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: uniqueName('arch-nokafka') },
      startTimeoutMs: 1500,
      log: (level, msg) => void (level === 'warn' && warnings.push(msg)),
    });
    const err = await archiver.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ArchiverError);
    expect((err as ArchiverError).code).toBe('CONSUMER_FAILED');
    expect((err as ArchiverError).message).toMatch(/still failing after \d+ attempts/);
    await archiver.close();
  }, 60_000);

  it('keeps retrying while the broker is down and starts once it is up', async () => {
    const topic = uniqueName('arch-late');
    const warnings: string[] = [];
    const archiver = new Archiver({
      kafka: { brokers: [`127.0.0.1:${CLUSTER_PORT}`] },
      topic,
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: uniqueName('arch-late') },
      startTimeoutMs: 120_000,
      log: (level, msg) => void (level === 'warn' && warnings.push(msg)),
    });
    cleanups.push(() => archiver.close());
    const started = archiver.start();
    let settled = false;
    void started.then(
      () => (settled = true),
      () => (settled = true),
    );
    // The first attempt fails (nothing listens), the archiver keeps trying instead of exiting.
    await eventually('a start-up retry', () => warnings.some((w) => /failed; retrying/.test(w)), 40_000, 100);
    expect(settled).toBe(false);
    await startCluster(clusterName, CLUSTER_PORT, 1);
    clusterStarted = true;
    await started;
    const text = await archiver.metrics.registry.metrics();
    expect(text).toMatch(/^agenttrace_archiver_start_retries_total [1-9]\d*$/m);
    await archiver.close();
  }, 150_000);
});
