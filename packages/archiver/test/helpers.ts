import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import Kafka from '@confluentinc/kafka-javascript';
import type { Producer } from '@confluentinc/kafka-javascript';
import { KafkaAdmin, createS3Client, rdkafkaConfig } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
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

/**
 * A producer kept open for a whole test, for steady trickles and bursts of events; remembers every
 * event it got an acknowledgement for.
 */
export class LiveProducer {
  readonly acked: AgentEvent[] = [];
  readonly #topic: string;
  #producer: Producer | undefined;
  #pending = 0;
  #failed: unknown;

  constructor(topic: string) {
    this.#topic = topic;
  }

  async connect(): Promise<void> {
    const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn()), 'enable.idempotence': true, dr_cb: true, 'linger.ms': 2 });
    await new Promise<void>((res, rej) => producer.connect({}, (err) => (err ? rej(err) : res())));
    producer.on('delivery-report', (err, report) => {
      this.#pending -= 1;
      if (err) this.#failed ??= err;
      else this.acked.push(report.opaque as AgentEvent);
    });
    producer.setPollInterval(10);
    this.#producer = producer;
  }

  send(events: AgentEvent[]): void {
    const producer = this.#producer;
    if (!producer) throw new Error('LiveProducer.send before connect');
    for (const e of events) {
      producer.produce(this.#topic, null, Buffer.from(JSON.stringify(e)), e.session_id, Date.now(), e);
      this.#pending += 1;
    }
  }

  /** Waits until every event sent so far is acknowledged (throws if any failed). */
  async settle(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (this.#pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    if (this.#failed) throw new Error(`a test event was not acknowledged: ${String(this.#failed)}`);
    if (this.#pending > 0) throw new Error(`${this.#pending} test events still unacknowledged after ${timeoutMs} ms`);
  }

  async close(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    if (!producer) return;
    await new Promise<void>((res) => producer.flush(5000, () => res()));
    await new Promise<void>((res) => producer.disconnect(() => res()));
  }
}

/**
 * An independent reader that keeps listing the archive prefix and counting it with DuckDB while
 * archivers work, as any batch query would. Every record of the test topic is a valid event and
 * offsets start at 0 with no gaps, so at every moment, per partition, the archive must hold the
 * offsets 0..hi exactly once each, hi + 1 must reach what the group had committed before the
 * listing, and what was visible must stay visible.
 */
export class ArchiveWatcher {
  readonly dir = mkdtempSync(join(tmpdir(), 'archiver-watch-'));
  readonly violations: string[] = [];
  samples = 0;
  /** Most rows seen at once (summed over partitions), for the report. */
  maxRows = 0;
  readonly #client: S3Client;
  readonly #prefix: string;
  readonly #committed: () => Record<number, number>;
  readonly #downloaded = new Set<string>();
  readonly #visible = new Map<number, number>();
  #stop = false;
  #loop: Promise<void> | undefined;

  constructor(client: S3Client, prefix: string, committed: () => Record<number, number>) {
    this.#client = client;
    this.#prefix = prefix;
    this.#committed = committed;
  }

  start(everyMs = 250): void {
    this.#loop = (async () => {
      while (!this.#stop) {
        await this.sample();
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }

  async sample(): Promise<void> {
    // Committed before listing: everything below it must be in the listing.
    const committed = this.#committed();
    const keys = (await listKeys(this.#client, stack.s3Bucket, `${this.#prefix}/`)).filter((k) => k.endsWith('.parquet'));
    const present: string[] = [];
    for (const key of keys) {
      const path = join(this.dir, key);
      if (!this.#downloaded.has(key)) {
        let bytes: Uint8Array;
        try {
          bytes = await getObjectBytes(this.#client, stack.s3Bucket, key);
        } catch (err) {
          // Listed, then deleted before we read it: for this sample it is gone.
          if ((err as { name?: string }).name === 'NoSuchKey') continue;
          throw err;
        }
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, bytes);
        this.#downloaded.add(key);
      }
      present.push(path);
    }
    const at = `sample ${this.samples + 1} (${present.length} objects)`;
    const seen = new Map<number, { n: number; d: number; e: number; lo: number; hi: number }>();
    if (present.length > 0) {
      const list = present.map((p) => `'${p}'`).join(', ');
      const rows = await duck(
        `SELECT kafka_partition::INT AS p, count(*)::INT AS n, count(DISTINCT kafka_offset)::INT AS d, count(DISTINCT event_id)::INT AS e,
                min(kafka_offset)::BIGINT AS lo, max(kafka_offset)::BIGINT AS hi
         FROM read_parquet([${list}]) GROUP BY 1`,
      );
      for (const r of rows) seen.set(r.p as number, { n: r.n as number, d: r.d as number, e: r.e as number, lo: Number(r.lo), hi: Number(r.hi) });
    }
    let total = 0;
    const partitions = new Set([...seen.keys(), ...Object.keys(committed).map(Number), ...this.#visible.keys()]);
    for (const p of partitions) {
      const s = seen.get(p) ?? { n: 0, d: 0, e: 0, lo: 0, hi: -1 };
      total += s.n;
      if (s.n !== s.d || s.n !== s.e) this.violations.push(`${at}: partition ${p} has ${s.n} rows for ${s.d} distinct offsets / ${s.e} distinct events (duplicates)`);
      if (s.d > 0 && (s.lo !== 0 || s.hi - s.lo + 1 !== s.d)) this.violations.push(`${at}: partition ${p} holds ${s.d} distinct offsets in ${s.lo}..${s.hi} (a gap)`);
      const c = committed[p] ?? 0;
      if (s.hi + 1 < c) this.violations.push(`${at}: partition ${p} committed up to ${c} but the archive shows only up to ${s.hi} (committed events missing)`);
      const before = this.#visible.get(p) ?? 0;
      if (s.d < before) this.violations.push(`${at}: partition ${p} showed ${before} events before, now ${s.d} (events disappeared)`);
      this.#visible.set(p, Math.max(before, s.d));
    }
    this.maxRows = Math.max(this.maxRows, total);
    this.samples += 1;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
