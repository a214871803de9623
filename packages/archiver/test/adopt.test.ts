import { afterAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { AgentEvent } from '@agenttrace/contract';
import { Archiver, hourStartOf, objectKey, parseObjectKey } from '../src/index.js';
import { PartitionWork } from '../src/partition-work.js';
import { putObject } from '../src/s3-store.js';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { deletePrefix, downloadPrefix, duck, s3 } from './helpers.js';

// What an earlier run (crashed between upload and commit) or the partition's previous owner left in
// the archive: an object starting at the committed offset but cut elsewhere. The archiver must take
// it as it is, never delete it and never write a second copy of its events.
const client = s3();
const HOUR = 3_600_000;
const T = hourStartOf(Date.now()) - 5 * HOUR + 10 * 60_000;
const cleanups: Array<() => Promise<void>> = [];

async function setup(name: string, n: number): Promise<{ topic: string; prefix: string; events: AgentEvent[] }> {
  const topic = uniqueName(name);
  const prefix = uniqueName(name);
  cleanups.push(async () => {
    await deletePrefix(client, prefix);
    await deleteTopic(topic);
    await deleteTopic(`${topic}.dlq`);
  });
  await createTopic(topic, 1);
  const events = Array.from({ length: n }, (_, i) => makeEvent({ session_id: `sess_${prefix}`, seq: i, timestamp: new Date(T + i * 1000).toISOString() }));
  await produceRaw(
    topic,
    events.map((e) => ({ key: e.session_id, value: JSON.stringify(e), partition: 0 })),
  );
  return { topic, prefix, events };
}

/** Stores offsets [first, last] of the topic's partition 0 the way an archiver would have, without committing. */
async function storeEarlierCut(topic: string, prefix: string, events: AgentEvent[], first: number, last: number): Promise<string> {
  const work = new PartitionWork({ topic, rollRows: 1_000_000, rollBytes: 1 << 30, rowGroupRows: 100_000, compression: 'snappy' });
  const records = events.slice(first, last + 1).map((e, i) => ({ offset: first + i, key: Buffer.from(e.session_id), value: Buffer.from(JSON.stringify(e)), timestamp: undefined }));
  work.add(0, records, Date.now(), 0);
  const [file] = work.roll(0, 'age', Date.now());
  const key = objectKey(prefix, { topic, hourStart: file!.hourStart!, partition: 0, firstOffset: first, lastOffset: last });
  await putObject(client, stack.s3Bucket, key, file!.body!, { multipartThresholdBytes: 1 << 30, multipartPartBytes: 16 << 20 });
  return key;
}

function archiver(topic: string, prefix: string): Archiver {
  return new Archiver({
    kafka: { brokers: stack.brokers, clientId: 'arch-adopt' },
    topic,
    dlqTopic: `${topic}.dlq`,
    groupId: `${topic}-group`,
    s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
    rollRows: 100_000,
    rollAgeMs: 1500,
  });
}

describe('objects left by an earlier run', () => {
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it('adopts an object cut elsewhere at its start offset and archives only what follows it', async () => {
    const { topic, prefix, events } = await setup('arch-adopt', 60);
    const earlier = await storeEarlierCut(topic, prefix, events, 0, 19);
    const a = archiver(topic, prefix);
    cleanups.push(() => a.close().catch(() => undefined));
    await a.start();
    await eventually('everything committed', () => a.stats.committed[0] === 60, 30_000, 50);
    await a.close();
    expect(a.stats.adopted).toBe(1);

    const got = await downloadPrefix(client, prefix);
    cleanups.push(async () => rmSync(got.dir, { recursive: true, force: true }));
    // The earlier object is still there, untouched, and the rest follows it without overlap.
    expect(got.keys).toContain(earlier);
    const ranges = got.keys.map((k) => parseObjectKey(k)!).map((n) => [n.firstOffset, n.lastOffset]);
    expect(ranges.sort((x, y) => x[0]! - y[0]!)).toEqual([
      [0, 19],
      [20, 59],
    ]);
    const [counts] = await duck(`SELECT count(*)::INT AS n, count(DISTINCT event_id)::INT AS d, count(DISTINCT kafka_offset)::INT AS o FROM read_parquet('${got.dir}/**/*.parquet')`);
    expect(counts).toEqual({ n: 60, d: 60, o: 60 });
  });

  it('stops with ARCHIVE_CONFLICT, writing and deleting nothing, when another writer stored an object starting inside its range', async () => {
    const { topic, prefix, events } = await setup('arch-conflict', 40);
    const foreign = await storeEarlierCut(topic, prefix, events, 10, 29);
    const a = archiver(topic, prefix);
    cleanups.push(() => a.close().catch(() => undefined));
    await a.start();
    const err = await a.failed;
    expect(err).toMatchObject({ code: 'ARCHIVE_CONFLICT' });
    expect(err.message).toContain(foreign);
    await a.close().catch(() => undefined);
    expect(a.stats.commits).toBe(0);
    const got = await downloadPrefix(client, prefix);
    cleanups.push(async () => rmSync(got.dir, { recursive: true, force: true }));
    expect(got.keys).toEqual([foreign]);
  });
});
