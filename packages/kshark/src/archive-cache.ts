import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { listArchiveFiles } from '@agenttrace/archive-format';
import { errorMessage } from '@agenttrace/common';
import { KsharkError } from './errors.js';

/**
 * Where archived files are copied before DuckDB reads them: `--cache-dir`, then
 * AGENTTRACE_CACHE_DIR, then $XDG_CACHE_HOME/agenttrace, then ~/.cache/agenttrace.
 * DuckDB reads S3 directly only through its httpfs extension, which it downloads on first use;
 * a local copy works offline and makes every later question a local scan.
 */
export function archiveCacheDir(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return resolve(flag);
  if (env.AGENTTRACE_CACHE_DIR) return resolve(env.AGENTTRACE_CACHE_DIR);
  const base = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(base, 'agenttrace');
}

export interface ArchiveFetchOptions {
  s3: S3Client;
  bucket: string;
  prefix?: string;
  topic: string;
  from?: number;
  to?: number;
  cacheDir: string;
  /** Called as files arrive: (done, total, bytes fetched so far). */
  onProgress?: (done: number, total: number, bytes: number) => void;
  concurrency?: number;
}

export interface ArchiveFetchResult {
  files: string[];
  fetched: number;
  cached: number;
  bytes: number;
}

/**
 * Copies the archive files of the range into the cache, fetching only those not there yet, and
 * returns their local paths. An archive object is never rewritten with other contents (same key,
 * same offsets, same rows: decision 0005), so a cached copy stays valid; a copy is written to a
 * temporary name and renamed, so an interrupted fetch never leaves half a file behind.
 */
export async function fetchArchiveFiles(o: ArchiveFetchOptions): Promise<ArchiveFetchResult> {
  let listed: Awaited<ReturnType<typeof listArchiveFiles>>;
  try {
    listed = await listArchiveFiles({ s3: o.s3, bucket: o.bucket, prefix: o.prefix, topic: o.topic, from: o.from, to: o.to });
  } catch (err) {
    throw new KsharkError('S3_UNAVAILABLE', `could not list the archive in bucket "${o.bucket}": ${errorMessage(err)}. Check --s3-endpoint and the credentials (AWS_ACCESS_KEY_ID...).`, { cause: err, retryable: true });
  }
  const root = join(o.cacheDir, 'archive', o.bucket);
  const out: string[] = [];
  const todo: Array<{ key: string; path: string }> = [];
  for (const f of listed) {
    const path = join(root, ...f.key.split('/'));
    // A key is data from the bucket: it must not lead outside the cache.
    if (!path.startsWith(root + sep)) throw new KsharkError('ARCHIVE_UNREADABLE', `the archive key "${f.key}" points outside the cache directory`);
    out.push(path);
    if (!(await exists(path))) todo.push({ key: f.key, path });
  }
  let done = out.length - todo.length;
  let bytes = 0;
  o.onProgress?.(done, out.length, bytes);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const item = todo[next++]!;
      let body: Uint8Array;
      try {
        const res = await o.s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: item.key }));
        body = await res.Body!.transformToByteArray();
      } catch (err) {
        // Listed a moment ago and gone now (retention or an operator): nothing to read.
        if ((err as { name?: string }).name === 'NoSuchKey') {
          out.splice(out.indexOf(item.path), 1);
          continue;
        }
        throw new KsharkError('S3_UNAVAILABLE', `could not fetch s3://${o.bucket}/${item.key}: ${errorMessage(err)}`, { cause: err, retryable: true });
      }
      await mkdir(dirname(item.path), { recursive: true });
      const tmp = `${item.path}.${process.pid}.part`;
      try {
        await writeFile(tmp, body);
        await rename(tmp, item.path);
      } catch (err) {
        await rm(tmp, { force: true });
        throw new KsharkError('CACHE_UNWRITABLE', `could not write ${item.path}: ${errorMessage(err)}. Choose another place with --cache-dir.`, { cause: err });
      }
      bytes += body.byteLength;
      done += 1;
      o.onProgress?.(done, out.length, bytes);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 8, todo.length) }, worker));
  return { files: out, fetched: todo.length, cached: listed.length - todo.length, bytes };
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
