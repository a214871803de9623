import Kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer, Message } from '@confluentinc/kafka-javascript';
import { connectClient, consumeBatch, describeKafka, disconnectWithTimeout, errorMessage, rdkafkaConfig, setTimeoutOnlyForFirstMessage, unreachableBrokers, type KafkaConnectionOptions } from '@agenttrace/common';
import { parseEvent, type AgentEvent } from '@agenttrace/contract';
import { randomBytes } from 'node:crypto';
import { SourceUnavailableError } from './errors.js';

/** One record of the session found while scanning, with where it sits in the partition. */
export interface ScannedEvent {
  event: AgentEvent;
  offset: number;
  /** The record's Kafka timestamp (ms). */
  kafkaTs: number;
}

export interface ScanResult {
  events: ScannedEvent[];
  /** Offset after the last record looked at. */
  nextOffset: number;
  /** Records of the session that are not valid events, and why (bounded). */
  rejected: string[];
  /** Set when the scan stopped before the end offset (idle timeout, maxEvents). */
  incomplete?: string;
}

/** Fails at once, naming each address and why, when no bootstrap broker accepts a connection. */
export async function assertKafkaReachable(conn: KafkaConnectionOptions): Promise<void> {
  const problem = await unreachableBrokers(conn);
  if (problem !== undefined) throw new SourceUnavailableError('kafka', describeKafka(conn), `cannot connect: ${problem}. Is the broker running and reachable from here?`);
}

/** A plain librdkafka consumer that reads assigned partitions without joining a group or committing. */
export async function openConsumer(conn: KafkaConnectionOptions, clientId: string, timeoutMs: number, extra: Record<string, string | number | boolean> = {}): Promise<KafkaConsumer> {
  const consumer = new Kafka.KafkaConsumer(
    {
      ...rdkafkaConfig({ ...conn, clientId }),
      // Never used to commit: assign() does not join the group; librdkafka only insists on a name.
      'group.id': `${clientId}-${randomBytes(4).toString('hex')}`,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'isolation.level': 'read_committed',
      'fetch.wait.max.ms': 50,
      'fetch.error.backoff.ms': 50,
      // 128 KiB per fetch: a read of several short ranges (a session's own offsets between the
      // gaps of its index) waits for one fetch per range, and that wait grows with the fetch
      // size: ~3 ms at 128 KiB, ~20 ms at 1 MiB, ~170 ms at 8 MiB. A 26k-record scan is as fast
      // at 128 KiB as at 1 MiB: turning records into JavaScript objects is the bound, and
      // librdkafka fetches the next slice while the last one is consumed.
      'max.partition.fetch.bytes': 128 * 1024,
      'fetch.max.bytes': 64 * 1024 * 1024,
      ...extra,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await connectClient(consumer, { timeoutMs, guardMs: timeoutMs }).catch((err: unknown) => {
    void disconnectWithTimeout(consumer, 5000);
    throw new SourceUnavailableError('kafka', describeKafka(conn), `cannot connect: ${errorMessage(err)}. Is the broker running and reachable from here?`, err);
  });
  // consume(n) then returns what is fetched once a first record is there, instead of waiting the
  // whole timeout for n records: the last, short batch of a scan cost a full timeout (~200 ms).
  setTimeoutOnlyForFirstMessage(consumer);
  return consumer;
}

export function closeConsumer(consumer: KafkaConsumer): Promise<void> {
  return disconnectWithTimeout(consumer, 5000);
}

export { consumeBatch };

function keyEquals(key: Message['key'], wanted: Buffer): boolean {
  if (key === null || key === undefined) return false;
  if (typeof key === 'string') return key === wanted.toString('utf8');
  return Buffer.isBuffer(key) && key.equals(wanted);
}

/** Keeps the records of one session key from a batch, parsing and validating them. */
export function pickSessionRecords(messages: Message[], sessionId: string, wantedKey: Buffer, out: ScannedEvent[], rejected: string[]): void {
  for (const m of messages) {
    if (!keyEquals(m.key, wantedKey)) continue;
    const parsed = parseEvent(m.value as Buffer | null, { key: sessionId });
    if (parsed.ok) out.push({ event: parsed.event, offset: m.offset, kafkaTs: m.timestamp ?? 0 });
    else if (rejected.length < 50) rejected.push(`offset ${m.offset}: ${parsed.reason} (${parsed.detail})`);
  }
}

/**
 * Reads one partition from `start` up to (not including) `end` and keeps the records whose key
 * is the session id. Reads nothing else: one partition, a bounded offset range.
 */
export async function scanPartition(params: {
  consumer: KafkaConsumer;
  topic: string;
  partition: number;
  sessionId: string;
  start: number;
  end: number;
  batchSize: number;
  idleTimeoutMs: number;
  maxEvents: number;
}): Promise<ScanResult> {
  const { consumer, topic, partition, sessionId, start, end } = params;
  const out: ScannedEvent[] = [];
  const rejected: string[] = [];
  if (start >= end) return { events: out, nextOffset: start, rejected };
  const wantedKey = Buffer.from(sessionId, 'utf8');
  consumer.assign([{ topic, partition, offset: start }]);
  consumer.setDefaultConsumeTimeout(200);
  let next = start;
  let lastProgress = Date.now();
  let incomplete: string | undefined;
  try {
    while (next < end) {
      const batch = await consumeBatch(consumer, Math.min(params.batchSize, end - next));
      if (batch.length > 0) {
        lastProgress = Date.now();
        const inRange = batch.filter((m) => m.partition === partition && m.offset < end);
        pickSessionRecords(inRange, sessionId, wantedKey, out, rejected);
        next = Math.max(next, batch[batch.length - 1]!.offset + 1);
        if (out.length >= params.maxEvents) {
          out.length = params.maxEvents;
          incomplete = `stopped after ${params.maxEvents} events (maxEvents)`;
          break;
        }
        continue;
      }
      // Control records of transactions are never delivered; the position still moves past them.
      const pos = consumer.position([{ topic, partition }])[0]?.offset;
      if (typeof pos === 'number' && pos >= end) {
        next = end;
        break;
      }
      if (Date.now() - lastProgress > params.idleTimeoutMs) {
        incomplete = `no records for ${params.idleTimeoutMs} ms at offset ${next} of partition ${partition} (end ${end}); the tail may be an open transaction`;
        break;
      }
    }
  } finally {
    consumer.unassign();
  }
  const result: ScanResult = { events: out, nextOffset: next, rejected };
  if (incomplete) result.incomplete = incomplete;
  return result;
}
