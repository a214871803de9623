import { describe, expect, it } from 'vitest';
import {
  DLQ_HEADER_CONSUMER,
  DLQ_HEADER_OFFSET,
  DLQ_HEADER_REASON,
  DLQ_HEADER_TOPIC,
  DLQ_HEADER_TRUNCATED_FROM,
  DLQ_TRUNCATE_BYTES,
  DeadLetterWriter,
  KAFKA_CODES,
  nextDlqValueLength,
  stripDlqHeaders,
  type DeadLetterRecord,
  type DeadLetterSource,
} from '../src/index.js';

/** What a topic with max.message.bytes = `limit` answers: librdkafka's "message too large" for bigger values. */
function topicTaking(limit: number, sent: DeadLetterRecord[]): (r: DeadLetterRecord) => Promise<void> {
  return async (r) => {
    if ((r.value?.byteLength ?? 0) > limit) throw Object.assign(new Error('Broker: Message size too large'), { code: KAFKA_CODES.MSG_SIZE_TOO_LARGE });
    sent.push(r);
  };
}

function header(r: DeadLetterRecord, name: string): string[] {
  return r.headers.flatMap((h) => Object.entries(h).filter(([k]) => k === name).map(([, v]) => String(v)));
}

const source = (value: Buffer | null, headers?: DeadLetterSource['headers']): DeadLetterSource => ({ topic: 'events', partition: 2, offset: 41, key: 'sess_1', value, timestamp: 1_700_000_000_000, headers });

const writer = (send: (r: DeadLetterRecord) => Promise<void>, giveUpAfterMs = 0) =>
  new DeadLetterWriter({ topic: 'events.dlq', consumer: 'group-a', send, backoff: { minMs: 1, maxMs: 5 }, giveUpAfterMs });

describe('DeadLetterWriter', () => {
  it('sends the whole record with its provenance when the DLQ takes it', async () => {
    const sent: DeadLetterRecord[] = [];
    const out = await writer(topicTaking(1_000_000, sent)).write(source(Buffer.alloc(300, 1)), 'not_json', 'bad');
    expect(out).toEqual({ status: 'sent', keptBytes: 300, originalBytes: 300, truncated: false });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.value?.byteLength).toBe(300);
    expect(sent[0]!.topic).toBe('events.dlq');
    expect(sent[0]!.timestamp).toBe(1_700_000_000_000);
    expect(header(sent[0]!, DLQ_HEADER_TOPIC)).toEqual(['events']);
    expect(header(sent[0]!, DLQ_HEADER_OFFSET)).toEqual(['41']);
    expect(header(sent[0]!, DLQ_HEADER_REASON)).toEqual(['not_json']);
    expect(header(sent[0]!, DLQ_HEADER_CONSUMER)).toEqual(['group-a']);
    expect(header(sent[0]!, DLQ_HEADER_TRUNCATED_FROM)).toEqual([]);
  });

  it('drops forged dlq headers of the source record, whatever their case, and keeps the others', async () => {
    const sent: DeadLetterRecord[] = [];
    await writer(topicTaking(1_000_000, sent)).write(
      source(Buffer.from('x'), [{ [DLQ_HEADER_TOPIC]: 'elsewhere' }, { 'AGENTTRACE-DLQ-REASON': 'forged', traceparent: '00-abc' }, { 'x-app': 'kept' }]),
      'not_json',
      'bad',
    );
    const names = sent[0]!.headers.flatMap((h) => Object.keys(h));
    expect(names.filter((n) => n.toLowerCase() === DLQ_HEADER_TOPIC)).toEqual([DLQ_HEADER_TOPIC]);
    expect(header(sent[0]!, DLQ_HEADER_TOPIC)).toEqual(['events']);
    expect(names.filter((n) => n.toLowerCase() === DLQ_HEADER_REASON)).toEqual([DLQ_HEADER_REASON]);
    expect(header(sent[0]!, 'traceparent')).toEqual(['00-abc']);
    expect(header(sent[0]!, 'x-app')).toEqual(['kept']);
    expect(stripDlqHeaders([{ 'agenttrace-dlq-offset': '1' }])).toEqual([]);
  });

  it('steps a refused value under 64 KiB straight down to an empty one, saying how long it was', async () => {
    const sent: DeadLetterRecord[] = [];
    const out = await writer(topicTaking(2000, sent)).write(source(Buffer.alloc(10_000, 7)), 'too_large', '');
    expect(out).toEqual({ status: 'sent', keptBytes: 0, originalBytes: 10_000, truncated: true });
    expect(sent[0]!.value?.byteLength).toBe(0);
    expect(header(sent[0]!, DLQ_HEADER_TRUNCATED_FROM)).toEqual(['10000']);
  });

  it('keeps the first 64 KiB of a larger refused value when the DLQ takes that', async () => {
    const sent: DeadLetterRecord[] = [];
    const value = Buffer.alloc(200_000, 3);
    const out = await writer(topicTaking(100_000, sent)).write(source(value), 'too_large', '');
    expect(out).toEqual({ status: 'sent', keptBytes: DLQ_TRUNCATE_BYTES, originalBytes: 200_000, truncated: true });
    expect(sent[0]!.value?.equals(value.subarray(0, DLQ_TRUNCATE_BYTES))).toBe(true);
    expect(header(sent[0]!, DLQ_HEADER_TRUNCATED_FROM)).toEqual(['200000']);
  });

  it('gives up when even an empty value is refused as too large (no endless retry)', async () => {
    let calls = 0;
    const out = await writer(async () => {
      calls += 1;
      throw Object.assign(new Error('Broker: Message size too large'), { code: 10 });
    }).write(source(Buffer.alloc(100_000)), 'too_large', '');
    expect(out.status).toBe('given-up');
    expect(calls).toBe(3); // whole, 64 KiB, empty
  });

  it('retries other failures and gives up once they have lasted giveUpAfterMs', async () => {
    let calls = 0;
    const started = Date.now();
    const out = await writer(async () => {
      calls += 1;
      throw Object.assign(new Error('Local: Message timed out'), { code: KAFKA_CODES.MSG_TIMED_OUT });
    }, 150).write(source(Buffer.from('x')), 'not_json', '');
    expect(out.status).toBe('given-up');
    expect(out.status === 'given-up' && out.why).toMatch(/still failing after \d+ ms: Local: Message timed out/);
    expect(calls).toBeGreaterThan(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('retries a transient failure until the record is acknowledged', async () => {
    const sent: DeadLetterRecord[] = [];
    let failures = 2;
    const out = await writer(async (r) => {
      if (failures-- > 0) throw new Error('Local: Broker transport failure');
      sent.push(r);
    }).write(source(Buffer.from('abc')), 'not_json', '');
    expect(out.status).toBe('sent');
    expect(sent).toHaveLength(1);
  });

  it('stops at once when the signal aborts, reporting nothing settled', async () => {
    const ctrl = new AbortController();
    setTimeout(() => ctrl.abort(), 50);
    const out = await writer(async () => {
      throw new Error('Local: Broker transport failure');
    }).write(source(Buffer.from('abc')), 'not_json', '', ctrl.signal);
    expect(out.status).toBe('aborted');
  });

  it('nextDlqValueLength: whole, then 64 KiB (only when longer), then empty, then nothing', () => {
    expect(nextDlqValueLength(2_000_000, undefined)).toBe(DLQ_TRUNCATE_BYTES);
    expect(nextDlqValueLength(2_000_000, DLQ_TRUNCATE_BYTES)).toBe(0);
    expect(nextDlqValueLength(2_000_000, 0)).toBeUndefined();
    expect(nextDlqValueLength(10_000, undefined)).toBe(0);
    expect(nextDlqValueLength(0, undefined)).toBeUndefined();
  });
});
