// readArchivedSession and listArchiveFiles against the real S3 server of the stack, on files laid
// out as the archiver lays them out, under a prefix of this test's own.
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { ArchiveFormatError, ColumnBuffer, hourStartOf, listArchiveFiles, listKeys, objectKey, readArchivedSession } from '@agenttrace/archive-format';
import { makeEvent, stack, uniqueName } from '../../../test-support/stack.js';

const HOUR = 3_600_000;
const topic = 'agent-events';
let s3: S3Client;
let prefix: string;
const bucket = stack.s3Bucket;
// Two hours, far enough in the past that no other test writes there.
const h1 = Date.parse('2026-02-01T10:00:00Z');
const h2 = h1 + HOUR;

function file(partition: number, firstOffset: number, events: AgentEvent[]): { key: string; body: Uint8Array } {
  const buffer = new ColumnBuffer();
  events.forEach((e, i) => buffer.push(e, Date.parse(e.timestamp), firstOffset + i));
  const hourStart = hourStartOf(Date.parse(events[0]!.timestamp));
  return {
    key: objectKey(prefix, { topic, hourStart, partition, firstOffset, lastOffset: firstOffset + events.length - 1 }),
    body: buffer.encode(partition, { rowGroupRows: 1000, compression: 'snappy' }),
  };
}

const at = (ms: number) => new Date(ms).toISOString();
const a0 = makeEvent({ session_id: 'sess_a', seq: 0, timestamp: at(h1 + 1000) });
const a1 = makeEvent({ session_id: 'sess_a', seq: 1, timestamp: at(h1 + 2000) });
const b0 = makeEvent({ session_id: 'sess_b', seq: 0, timestamp: at(h1 + 1500) });
const a2 = makeEvent({ session_id: 'sess_a', seq: 2, timestamp: at(h2 + 1000) });
// One event on another partition (as after the topic grew): the read covers every partition.
const a3 = makeEvent({ session_id: 'sess_a', seq: 3, timestamp: at(h2 + 2000) });

beforeAll(async () => {
  s3 = createS3Client({ endpoint: stack.s3Endpoint });
  prefix = uniqueName('archive-format');
  const files = [
    file(0, 10, [a0, b0, a1]),
    // The same offsets written twice (an expelled member's copy, decision 0005): read once.
    file(0, 11, [b0, a1]),
    file(0, 13, [a2]),
    file(1, 5, [a3]),
  ];
  for (const f of files) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: f.key, Body: f.body }));
});

afterAll(async () => {
  for (const key of await listKeys(s3, bucket, `${prefix}/`)) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  s3.destroy();
});

describe('readArchivedSession', () => {
  it('returns one session in Kafka offset order, each (partition, offset) once', async () => {
    const events = await readArchivedSession({ s3, bucket, prefix, topic, sessionId: 'sess_a' });
    expect(events).toEqual([a0, a1, a2, a3]);
    expect(await readArchivedSession({ s3, bucket, prefix, topic, sessionId: 'sess_b' })).toEqual([b0]);
    expect(await readArchivedSession({ s3, bucket, prefix, topic, sessionId: 'sess_none' })).toEqual([]);
  });

  it('reads only the hours of the range and the partition it is given', async () => {
    expect(await readArchivedSession({ s3, bucket, prefix, topic, sessionId: 'sess_a', from: h2, to: h2 + HOUR - 1 })).toEqual([a2, a3]);
    expect(await readArchivedSession({ s3, bucket, prefix, topic, sessionId: 'sess_a', partition: 1 })).toEqual([a3]);
    const listed = await listArchiveFiles({ s3, bucket, prefix, topic, from: h1, to: h1 + 10 });
    expect(listed.map((f) => [f.partition, f.firstOffset, f.lastOffset, f.hourStart])).toEqual([
      [0, 10, 12, h1],
      [0, 11, 12, h1],
    ]);
  });

  it('rejects with ArchiveFormatError ARCHIVE_READ_FAILED, naming the object, when a file is not Parquet', async () => {
    const bad = objectKey(prefix, { topic: 'broken-topic', hourStart: h1, partition: 0, firstOffset: 0, lastOffset: 0 });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: bad, Body: new TextEncoder().encode('not parquet') }));
    const err = await readArchivedSession({ s3, bucket, prefix, topic: 'broken-topic', sessionId: 'sess_a' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveFormatError);
    expect((err as ArchiveFormatError).code).toBe('ARCHIVE_READ_FAILED');
    expect((err as ArchiveFormatError).message).toContain(bad);
  });
});
