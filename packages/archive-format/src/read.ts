import type { S3Client } from '@aws-sdk/client-s3';
import { parquetReadObjects, type AsyncBuffer } from 'hyparquet';
import { DEFAULT_TOPIC, type AgentEvent } from '@agenttrace/contract';
import { errorMessage } from '@agenttrace/common';
import { eventFromRow, type ArchiveRow } from './columns.js';
import { ArchiveFormatError } from './errors.js';
import { hourStartOf, listingPrefixes, parseObjectKey, type ObjectName } from './layout.js';
import { getObjectBytes, listKeys } from './s3-objects.js';

export interface ArchiveReadOptions {
  s3: S3Client;
  bucket: string;
  prefix?: string;
  /** Default 'agent-events'. */
  topic?: string;
  sessionId: string;
  /** Epoch ms; files whose dt/hour lies outside [from, to] are not read. */
  from?: number;
  to?: number;
  /** When known, only that partition's files are read. */
  partition?: number;
}

const READ_COLUMNS = [
  'event_id',
  'session_id',
  'agent_id',
  'emitter_id',
  'seq',
  'timestamp',
  'event_type',
  'status',
  'schema_version',
  'kafka_partition',
  'kafka_offset',
  'payload_json',
  'context_json',
  'offload_json',
];

/** One archive file: its key and what the key says about it. */
export type ArchiveFile = { key: string } & Omit<ObjectName, 'topic'>;

function asyncBuffer(bytes: Uint8Array): AsyncBuffer {
  const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return { byteLength: ab.byteLength, slice: (start: number, end?: number) => ab.slice(start, end) };
}

/** Directory listings in flight at once. */
const LIST_CONCURRENCY = 16;

/** The archive files that may hold events of the range (and partition), in partition/offset order. */
export async function listArchiveFiles(opts: Omit<ArchiveReadOptions, 'sessionId'>): Promise<ArchiveFile[]> {
  const topic = opts.topic ?? DEFAULT_TOPIC;
  const lo = opts.from === undefined ? Number.NEGATIVE_INFINITY : hourStartOf(opts.from);
  const hi = opts.to === undefined ? Number.POSITIVE_INFINITY : hourStartOf(opts.to);
  const files: ArchiveFile[] = [];
  // A long range is a hundred or more directories: list them a few at a time, not one by one.
  const prefixes = listingPrefixes(opts.prefix, topic, opts.from, opts.to);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < prefixes.length) {
      const prefix = prefixes[next++]!;
      for (const key of await listKeys(opts.s3, opts.bucket, prefix)) {
        const n = parseObjectKey(key);
        if (!n || n.hourStart < lo || n.hourStart > hi) continue;
        if (opts.partition !== undefined && n.partition !== opts.partition) continue;
        // A key under another topic that merely shares the prefix path is not ours.
        if (!key.startsWith(prefix)) continue;
        files.push({ key, ...n });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, prefixes.length) }, worker));
  files.sort((a, b) => a.partition - b.partition || a.firstOffset - b.firstOffset || a.lastOffset - b.lastOffset);
  return files;
}

/**
 * One session's events from the archive, in Kafka offset order ([] when there are none). Payload
 * and context are rebuilt from their JSON columns exactly as produced; offloaded fields stay
 * references (restoreOffloads from @agenttrace/common fetches them).
 */
export async function readArchivedSession(opts: ArchiveReadOptions): Promise<AgentEvent[]> {
  let files: ArchiveFile[];
  try {
    files = await listArchiveFiles(opts);
  } catch (err) {
    throw new ArchiveFormatError('ARCHIVE_READ_FAILED', `could not list the archive in bucket "${opts.bucket}": ${errorMessage(err)}`, { cause: err, retryable: true });
  }
  const rows: ArchiveRow[] = [];
  const concurrency = 8;
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const file = files[next++]!;
      let bytes: Uint8Array;
      try {
        bytes = await getObjectBytes(opts.s3, opts.bucket, file.key);
      } catch (err) {
        // Listed a moment ago and gone now (the archiver never deletes; retention or an operator did).
        if ((err as { name?: string }).name === 'NoSuchKey') continue;
        throw new ArchiveFormatError('ARCHIVE_READ_FAILED', `could not read s3://${opts.bucket}/${file.key}: ${errorMessage(err)}`, { cause: err, retryable: true });
      }
      try {
        const found = (await parquetReadObjects({
          file: asyncBuffer(bytes),
          columns: READ_COLUMNS,
          filter: { session_id: { $eq: opts.sessionId } },
        })) as unknown as ArchiveRow[];
        rows.push(...found);
      } catch (err) {
        throw new ArchiveFormatError('ARCHIVE_READ_FAILED', `s3://${opts.bucket}/${file.key} is not a readable archive file: ${errorMessage(err)}`, { cause: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  rows.sort((a, b) => a.kafka_partition - b.kafka_partition || Number(a.kafka_offset) - Number(b.kafka_offset));
  const out: AgentEvent[] = [];
  let lastPartition = -1;
  let lastOffset = -1;
  for (const row of rows) {
    const offset = Number(row.kafka_offset);
    // The archiver never writes a record twice; a frozen member expelled from the group can (decision 0005).
    if (row.kafka_partition === lastPartition && offset === lastOffset) continue;
    lastPartition = row.kafka_partition;
    lastOffset = offset;
    out.push(eventFromRow(row));
  }
  return out;
}
