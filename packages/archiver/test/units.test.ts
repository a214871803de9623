import { describe, expect, it } from 'vitest';
import { OptionsError } from '@agenttrace/common';
import { parseEvent } from '@agenttrace/contract';
import { listingPrefixes, objectKey, parseObjectKey, PartitionRoller, resolveArchiverOptions } from '../src/index.js';
import { makeEvent } from '../../../test-support/stack.js';

const H = 3_600_000;
const T0 = Date.parse('2026-01-15T14:00:00.000Z');

describe('layout', () => {
  it('names files deterministically, sortable, and reads them back', () => {
    const name = { topic: 'agent-events', hourStart: T0, partition: 7, firstOffset: 1200, lastOffset: 1299 };
    expect(objectKey('', name)).toBe('agent-events/dt=2026-01-15/hour=14/part-7-00000000000000001200-00000000000000001299.parquet');
    expect(objectKey('prod/x', name)).toBe('prod/x/agent-events/dt=2026-01-15/hour=14/part-7-00000000000000001200-00000000000000001299.parquet');
    expect(parseObjectKey(objectKey('p', name))).toEqual({ hourStart: T0, partition: 7, firstOffset: 1200, lastOffset: 1299 });
    expect(parseObjectKey('p/agent-events/dt=2026-01-15/hour=14/other.json')).toBeUndefined();
  });

  it('lists whole days inside a range and single hours at its edges', () => {
    expect(listingPrefixes('', 't', T0 + 5, T0 + H + 5)).toEqual(['t/dt=2026-01-15/hour=14/', 't/dt=2026-01-15/hour=15/']);
    const days = listingPrefixes('p', 't', Date.parse('2026-01-14T23:10:00Z'), Date.parse('2026-01-16T00:30:00Z'));
    expect(days).toEqual(['p/t/dt=2026-01-14/hour=23/', 'p/t/dt=2026-01-15/', 'p/t/dt=2026-01-16/hour=00/']);
    expect(listingPrefixes('', 't')).toEqual(['t/']);
    expect(listingPrefixes('', 't', T0, T0 - H)).toEqual([]);
  });
});

describe('PartitionRoller', () => {
  const rec = (ts: number) => {
    const e = makeEvent({ timestamp: new Date(ts).toISOString() });
    const value = Buffer.from(JSON.stringify(e));
    return { value, parsed: parseEvent(value) };
  };

  it('rolls on rows, on raw bytes and at every hour change, and keeps bad records with their range', () => {
    const r = new PartitionRoller(2, { rollRows: 3, rollBytes: 1_000_000 });
    const closed = [];
    let offset = 0;
    for (const ts of [T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + H + 1, T0 + H + 2]) {
      const { value, parsed } = rec(ts);
      closed.push(...r.add(offset++, value, null, undefined, parsed, 0));
    }
    closed.push(...r.add(offset++, Buffer.from('{bad'), null, undefined, parseEvent(Buffer.from('{bad')), 0));
    expect(closed.map((f) => [f.firstOffset, f.lastOffset, f.reason, f.hourStart])).toEqual([
      [0, 2, 'rows', T0],
      [3, 3, 'hour', T0],
      [4, 6, 'rows', T0 + H],
    ]);
    expect(closed[2]!.bad.map((b) => [b.offset, b.reason])).toEqual([[6, 'not_json']]);
    const bytes = new PartitionRoller(0, { rollRows: 100, rollBytes: 1024 });
    let n = 0;
    while (bytes.add(n, rec(T0).value, null, undefined, rec(T0).parsed, 0).length === 0) n++;
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(10);
  });

  it('refuses an offset that does not rise, within a file and across files, with a stable code', () => {
    const r = new PartitionRoller(4, { rollRows: 2, rollBytes: 1_000_000 });
    const add = (offset: number) => r.add(offset, rec(T0).value, null, undefined, rec(T0).parsed, 0);
    add(499);
    expect(() => add(499)).toThrow(expect.objectContaining({ code: 'OFFSET_ORDER' }));
    expect(add(500).map((f) => [f.firstOffset, f.lastOffset])).toEqual([[499, 500]]);
    // The file [499, 500] is closed; a batch from before a rebalance replaying 450.. must not open another.
    expect(() => add(450)).toThrow(/partition 4: offset 450 after 500/);
    // After discard() (the partition was lost or moved) the stream may start anywhere again.
    r.discard();
    expect(add(450)).toEqual([]);
  });

  it('rolls by age only once the file is old enough', () => {
    const r = new PartitionRoller(0, { rollRows: 100, rollBytes: 1_000_000 });
    const { value, parsed } = rec(T0);
    r.add(0, value, null, undefined, parsed, 1000);
    expect(r.roll('age', 1500, 1000)).toBeUndefined();
    expect(r.roll('age', 2000, 1000)).toMatchObject({ firstOffset: 0, lastOffset: 0, reason: 'age' });
    expect(r.roll('age', 9000, 1000)).toBeUndefined();
  });
});

describe('options', () => {
  it('validates and names the option', () => {
    const env = { AGENTTRACE_BROKERS: '127.0.0.1:9092' };
    expect(resolveArchiverOptions({}, env)).toMatchObject({ topic: 'agent-events', groupId: 'archiver', dlqTopic: 'agent-events.dlq', rollRows: 200_000 });
    expect(() => resolveArchiverOptions({ rollRows: 0 }, env)).toThrow(/options\.rollRows/);
    expect(() => resolveArchiverOptions({ multipartPartBytes: 1024 }, env)).toThrow(/options\.multipartPartBytes/);
    expect(() => resolveArchiverOptions({ s3: { bucket: 'x', prefix: '/lead' } }, env)).toThrow(/options\.s3\.bucket|options\.s3\.prefix/);
    expect(() => resolveArchiverOptions({ s3: { bucket: 'agenttrace', prefix: 'trail/' } }, env)).toThrow(OptionsError);
    expect(() => resolveArchiverOptions({ dlqTopic: 'agent-events' }, env)).toThrow(/options\.dlqTopic/);
  });
});
