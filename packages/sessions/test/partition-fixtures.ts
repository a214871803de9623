/**
 * What the Kafka-range tests share: a one-partition topic written record by record, whose
 * dashboard groups' positions they watch, and events numbered by seq.
 */
import { Redis } from 'ioredis';
import { KafkaAdmin, redisKeys } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import type { DashboardConsumer } from '@agenttrace/dashboard-consumer';
import { deleteTopic, dropRedisPrefix, makeEvent, produceRaw, sleep, stack, type RawRecord } from '../../../test-support/stack.js';

const T0 = Date.parse('2026-03-02T09:00:00Z');

/** Event seq of a session: session_start first, tool calls after it, a second apart. */
export const seqEvent = (sessionId: string, seq: number, emitter: string): AgentEvent =>
  makeEvent({ session_id: sessionId, emitter_id: emitter, seq, event_type: seq === 0 ? 'session_start' : 'tool_call', timestamp: new Date(T0 + seq * 1000).toISOString(), payload: seq === 0 ? {} : { tool: `tool.${seq}`, input: { seq }, output: { ok: true }, latency_ms: 1 } });

export const eventRecord = (e: AgentEvent): RawRecord => ({ key: e.session_id, value: JSON.stringify(e) });

/** n records of `sessions` other sessions, round robin (named after the tag). */
export const otherRecords = (prefix: string, tag: string, n: number, sessions: number): RawRecord[] =>
  Array.from({ length: n }, (_, i) => eventRecord(seqEvent(`${prefix}_${tag}_${i % sessions}`, Math.floor(i / sessions), `em_${tag}`)));

export async function highWatermark(topic: string): Promise<number> {
  const admin = new KafkaAdmin({ brokers: stack.brokers });
  try {
    return (await admin.watermarks(topic, [0], 5000)).get(0)?.high ?? 0;
  } finally {
    admin.close();
  }
}

/** The offset a dashboard group stored for partition 0 (undefined before it applied anything). */
export async function storedPosition(redis: Redis, prefix: string, group: string, topic: string): Promise<number | undefined> {
  const v = await redis.hget(redisKeys(prefix).offsets(group, topic), '0');
  return v === null ? undefined : Number(v);
}

/**
 * Starts a dashboard group at the end of the partition. librdkafka looks the end up only once it
 * fetches: records produced before that are not the group's to apply. So filler records are
 * produced until it has applied some (bounded).
 */
export async function startAtEnd(c: DashboardConsumer, redis: Redis, prefix: string, topic: string, filler: (round: number) => RawRecord[]): Promise<void> {
  await c.start();
  for (let i = 0; i < 60 && (await storedPosition(redis, prefix, c.options.group, topic)) === undefined; i++) {
    await produceRaw(topic, filler(i));
    await sleep(250);
  }
}

/** Closes the consumers, deletes the topic with its .dlq and .alerts, drops the Redis prefix. */
export async function cleanUp(consumers: DashboardConsumer[], topic: string, prefix: string): Promise<void> {
  for (const c of consumers) await c.close().catch(() => undefined);
  for (const t of [topic, `${topic}.dlq`, `${topic}.alerts`]) await deleteTopic(t);
  const redis = new Redis(stack.redisUrl);
  try {
    await dropRedisPrefix(redis, prefix);
  } finally {
    await redis.quit();
  }
}
