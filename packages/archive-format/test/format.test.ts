// The archive format on its own, without S3: keys, listing prefixes, and a Parquet file written by
// ColumnBuffer read back into the exact events (the same reader readArchivedSession uses).
import { parquetReadObjects } from 'hyparquet';
import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '@agenttrace/contract';
import { ARCHIVE_COLUMNS, ColumnBuffer, eventFromRow, hourStartOf, listingPrefixes, objectKey, parseObjectKey, type ArchiveRow } from '@agenttrace/archive-format';
import { makeEvent } from '../../../test-support/stack.js';

const HOUR = 3_600_000;

describe('object keys', () => {
  it('put a file under its topic, day and hour, and read back partition, offsets and hour', () => {
    const hourStart = Date.parse('2026-03-04T05:00:00Z');
    const key = objectKey('tenant/a', { topic: 'agent-events', hourStart, partition: 3, firstOffset: 10, lastOffset: 42 });
    expect(key).toBe('tenant/a/agent-events/dt=2026-03-04/hour=05/part-3-00000000000000000010-00000000000000000042.parquet');
    expect(parseObjectKey(key)).toEqual({ hourStart, partition: 3, firstOffset: 10, lastOffset: 42 });
    expect(parseObjectKey('tenant/a/agent-events/dt=2026-03-04/hour=05/notes.txt')).toBeUndefined();
  });

  it('list whole days inside a range and single hours at its edges', () => {
    const from = Date.parse('2026-03-03T22:30:00Z');
    const to = Date.parse('2026-03-05T01:10:00Z');
    expect(listingPrefixes('', 't', from, to)).toEqual(['t/dt=2026-03-03/hour=22/', 't/dt=2026-03-03/hour=23/', 't/dt=2026-03-04/', 't/dt=2026-03-05/hour=00/', 't/dt=2026-03-05/hour=01/']);
    expect(listingPrefixes(undefined, 't')).toEqual(['t/']);
    expect(hourStartOf(from + 5 * HOUR)).toBe(Date.parse('2026-03-04T03:00:00Z'));
  });
});

describe('columns', () => {
  it('a file written by ColumnBuffer reads back into the same events, offload markers included', async () => {
    const ts = Date.parse('2026-03-04T05:06:07.089Z');
    const events: AgentEvent[] = [
      makeEvent({ session_id: 'sess_fmt_a', seq: 0, event_type: 'session_start', payload: {}, timestamp: new Date(ts).toISOString() }),
      makeEvent({
        session_id: 'sess_fmt_a',
        seq: 1,
        event_type: 'llm_call',
        payload: { model: 'm-1', input_tokens: 12, output_tokens: 34, cost_usd: 0.5, prompt: { $offload: { key: 'k/1', bytes: 9 } } },
        context: { parent_event_id: 'evt_parent', model: 'ignored' },
        offload: { fields: ['payload.prompt'] } as unknown as AgentEvent['offload'],
        timestamp: new Date(ts + 1).toISOString(),
      }),
      makeEvent({ session_id: 'sess_fmt_b', seq: 0, status: 'error', timestamp: new Date(ts + 2).toISOString() }),
    ];
    const buffer = new ColumnBuffer();
    events.forEach((e, i) => buffer.push(e, Date.parse(e.timestamp), 100 + i));
    expect(buffer.rows).toBe(3);
    expect(buffer.minTimestamp).toBe(ts);
    expect(buffer.maxTimestamp).toBe(ts + 2);
    const file = buffer.encode(7, { rowGroupRows: 2, compression: 'snappy', kvMetadata: { 'agenttrace.topic': 't' } });
    const ab = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer;
    const rows = (await parquetReadObjects({ file: { byteLength: ab.byteLength, slice: (s: number, e?: number) => ab.slice(s, e) } })) as unknown as Array<ArchiveRow & Record<string, unknown>>;
    expect(Object.keys(rows[0]!).sort()).toEqual([...ARCHIVE_COLUMNS].sort());
    expect(rows.map((r) => [r.kafka_partition, Number(r.kafka_offset)])).toEqual([
      [7, 100],
      [7, 101],
      [7, 102],
    ]);
    // Typed columns for filtering: the model from the payload, tokens as integers.
    expect(rows[1]).toMatchObject({ model: 'm-1', input_tokens: 12n, output_tokens: 34n, cost_usd: 0.5, parent_event_id: 'evt_parent' });
    expect(rows.map((r) => eventFromRow(r))).toEqual(events);
  });
});
