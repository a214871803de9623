/** What the archiver's backlog benchmarks share: the events they archive and the checks of what was stored. */
import { cpus, loadavg, totalmem } from 'node:os';
import Kafka, { type LibrdKafkaError } from '@confluentinc/kafka-javascript';
import { listArchiveFiles, type ArchiveFile } from '@agenttrace/archive-format';
import { rdkafkaConfig } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { kafkaConn, makeEvent, produceRecords, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';
import { s3 } from '../test/helpers.js';

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * `n` realistic events over `sessions` sessions, keyed by session: a third LLM calls, the rest
 * tool calls. `partition` pins each record to a partition (else the producer hashes the key);
 * `timestamp` sets each event's time (else the time it is made).
 */
export function backlogRecords(n: number, sessions: number, opts: { partition?: (i: number) => number; timestamp?: (i: number) => string } = {}): RawRecord[] {
  return Array.from({ length: n }, (_, i) => {
    const sid = `sess_${i % sessions}`;
    const e: AgentEvent = makeEvent({
      session_id: sid,
      agent_id: `agent_${i % 7}`,
      seq: Math.floor(i / sessions),
      ...(opts.timestamp ? { timestamp: opts.timestamp(i) } : {}),
      event_type: i % 3 === 0 ? 'llm_call' : 'tool_call',
      payload: i % 3 === 0 ? { model: 'claude-sonnet-4-5', input: 'summarize the invoice history', output: 'pays on time', input_tokens: 900, output_tokens: 150, cost_usd: 0.0049, latency_ms: 800 } : { tool: `tool_${i % 5}`, input: { customer_id: 'cus_1', amount: 4500 }, output: { ok: true }, latency_ms: 12 },
      context: { reasoning: 'milestone 2 completion', confidence: 0.9 },
    });
    return { key: sid, value: JSON.stringify(e), ...(opts.partition ? { partition: opts.partition(i) } : {}) };
  });
}

async function archiveFiles(prefix: string, topic: string): Promise<ArchiveFile[]> {
  const client = s3();
  try {
    return await listArchiveFiles({ s3: client, bucket: stack.s3Bucket, prefix, topic });
  } finally {
    client.destroy();
  }
}

/** Offsets of each partition held by the stored objects (the archive never stores one twice). */
export async function storedOffsets(prefix: string, topic: string): Promise<Map<number, number>> {
  const stored = new Map<number, number>();
  for (const f of await archiveFiles(prefix, topic)) stored.set(f.partition, (stored.get(f.partition) ?? 0) + f.lastOffset - f.firstOffset + 1);
  return stored;
}

/**
 * Throws unless the stored objects hold every offset of every partition exactly once: each
 * partition's files, in offset order, run from 0 to its end (exclusive: the high watermark, or
 * the offset of a transaction's commit marker) without a gap or an overlap.
 */
export async function assertArchivedOnce(prefix: string, topic: string, high: Map<number, number>): Promise<void> {
  const next = new Map<number, number>();
  // listArchiveFiles sorts by partition, then first offset.
  for (const f of await archiveFiles(prefix, topic)) {
    const expected = next.get(f.partition) ?? 0;
    if (f.firstOffset !== expected) throw new Error(`partition ${f.partition}: object ${f.key} starts at offset ${f.firstOffset}, ${expected} expected (${f.firstOffset < expected ? 'overlap' : 'gap'})`);
    next.set(f.partition, f.lastOffset + 1);
  }
  for (const [p, h] of high) if ((next.get(p) ?? 0) !== h) throw new Error(`partition ${p}: offsets 0-${(next.get(p) ?? 0) - 1} archived, 0-${h - 1} expected`);
}

/** The machine line every benchmark prints: cores, memory, Node, load averages (1, 5, 15 min). */
export function machineLine(): string {
  return `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}; load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ')}`;
}

/** A transaction holding produced records that read_committed consumers (the archiver) do not see yet. */
export interface OpenTransaction {
  /** Makes every record visible at once, then disconnects. */
  commit(): Promise<void>;
  /** Drops the records, then disconnects. */
  abort(): Promise<void>;
}

const settle = (fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void) => new Promise<void>((res, rej) => fn((err) => (err ? rej(err) : res())));

/**
 * Produces records in one transaction and leaves it open (up to 10 min), so that consumers can
 * start, join and warm up on what came before and the whole backlog appears at a known moment.
 */
export async function produceInTransaction(topic: string, records: RawRecord[]): Promise<OpenTransaction> {
  const producer = new Kafka.Producer({ ...rdkafkaConfig(kafkaConn()), dr_cb: true, 'linger.ms': 5, 'transactional.id': uniqueName('bench-txn'), 'transaction.timeout.ms': 600_000 });
  await settle((cb) => producer.connect({}, cb));
  const disconnect = () => new Promise<void>((res) => producer.disconnect(() => res()));
  try {
    await settle((cb) => producer.initTransactions(30_000, cb));
    await settle((cb) => producer.beginTransaction(cb));
    await produceRecords(producer, topic, records);
  } catch (err) {
    await disconnect();
    throw err;
  }
  const end = (fn: (cb: (err: LibrdKafkaError) => void) => void) => async () => {
    try {
      await settle(fn);
    } finally {
      await disconnect();
    }
  };
  return { commit: end((cb) => producer.commitTransaction(60_000, cb)), abort: end((cb) => producer.abortTransaction(60_000, cb)) };
}
