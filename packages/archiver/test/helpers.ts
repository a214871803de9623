import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { KafkaAdmin, createS3Client } from '@agenttrace/common';
import { kafkaConn, stack } from '../../../test-support/stack.js';
import { getObjectBytes, listKeys } from '../src/s3-store.js';

export const s3 = (): S3Client => createS3Client({ endpoint: stack.s3Endpoint });

/** Downloads every object under a prefix to a fresh temp dir; returns the dir and the keys. */
export async function downloadPrefix(client: S3Client, prefix: string, bucket = stack.s3Bucket): Promise<{ dir: string; keys: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'archiver-test-'));
  const keys = await listKeys(client, bucket, `${prefix}/`);
  for (const key of keys) {
    const path = join(dir, key);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, await getObjectBytes(client, bucket, key));
  }
  return { dir, keys };
}

export async function deletePrefix(client: S3Client, prefix: string, bucket = stack.s3Bucket): Promise<void> {
  for (const key of await listKeys(client, bucket, `${prefix}/`).catch(() => [] as string[])) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })).catch(() => undefined);
  }
}

/** Runs SQL in an in-memory DuckDB (an independent Parquet reader) and returns rows as objects. */
export async function duck(sql: string): Promise<Array<Record<string, unknown>>> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const reader = await conn.runAndReadAll(sql);
    return reader.getRowObjectsJS() as Array<Record<string, unknown>>;
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** High watermark per partition of a topic. */
export async function highWatermarks(topic: string, partitions: number): Promise<Map<number, number>> {
  const admin = new KafkaAdmin(kafkaConn());
  try {
    const w = await admin.watermarks(topic, Array.from({ length: partitions }, (_, i) => i));
    return new Map([...w].map(([p, v]) => [p, v.high]));
  } finally {
    admin.close();
  }
}

/** True when every partition's committed offset (as reported) reached its high watermark. */
export function allCommitted(committed: Record<number, number>, high: Map<number, number>): boolean {
  for (const [p, h] of high) if (h > 0 && (committed[p] ?? 0) < h) return false;
  return true;
}
