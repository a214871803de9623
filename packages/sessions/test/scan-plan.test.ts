import { describe, expect, it } from 'vitest';
import { planScan } from '../src/scan-plan.js';

describe('planScan', () => {
  it('scans from the start to the end without an index or coverage', () => {
    expect(planScan({ start: 100, high: 500, coverage: [{ since: 0, position: 400 }] })).toEqual([{ start: 100, end: 500 }]);
    expect(planScan({ start: 100, high: 500, lastIndexed: 150, coverage: [] })).toEqual([{ start: 100, end: 500 }]);
    expect(planScan({ start: 500, high: 500, coverage: [] })).toEqual([]);
  });

  it('skips what a group applied after the last indexed offset, keeping the unapplied tail', () => {
    expect(planScan({ start: 100, high: 500, lastIndexed: 150, coverage: [{ since: 0, position: 400 }] })).toEqual([
      { start: 100, end: 151 },
      { start: 400, end: 500 },
    ]);
    // The group is at the end: nothing after the session's own offsets.
    expect(planScan({ start: 100, high: 500, lastIndexed: 150, coverage: [{ since: 0, position: 500 }] })).toEqual([{ start: 100, end: 151 }]);
  });

  it('never skips offsets below where a group started applying', () => {
    expect(planScan({ start: 100, high: 500, lastIndexed: 150, coverage: [{ since: 300, position: 450 }] })).toEqual([
      { start: 100, end: 300 },
      { start: 450, end: 500 },
    ]);
  });

  it('takes the largest gap any group vouches for, and ignores one behind the index', () => {
    const coverage = [
      { since: 0, position: 120 },
      { since: 200, position: 260 },
      { since: 0, position: 380 },
    ];
    expect(planScan({ start: 100, high: 500, lastIndexed: 150, coverage })).toEqual([
      { start: 100, end: 151 },
      { start: 380, end: 500 },
    ]);
  });

  it('keeps a --from start after the last indexed offset', () => {
    expect(planScan({ start: 300, high: 500, lastIndexed: 150, coverage: [{ since: 0, position: 400 }] })).toEqual([{ start: 400, end: 500 }]);
  });
});

describe('planScan with the index gaps', () => {
  const gaps = [
    { start: 161, end: 200 },
    { start: 211, end: 300 },
  ];

  it('skips the gaps between the session own records, and the vouched-for tail after them', () => {
    expect(planScan({ start: 100, high: 500, lastIndexed: 350, coverage: [{ since: 0, position: 450 }], gaps })).toEqual([
      { start: 100, end: 161 },
      { start: 200, end: 211 },
      { start: 300, end: 351 },
      { start: 450, end: 500 },
    ]);
  });

  it('uses no gap without a trusted index (another topic id leaves lastIndexed unset)', () => {
    expect(planScan({ start: 100, high: 500, coverage: [{ since: 0, position: 450 }], gaps })).toEqual([{ start: 100, end: 500 }]);
  });

  it('cuts a gap at a --from start, and ignores one past the last indexed offset', () => {
    expect(planScan({ start: 250, high: 500, lastIndexed: 350, coverage: [], gaps: [...gaps, { start: 400, end: 450 }] })).toEqual([{ start: 300, end: 500 }]);
  });
});
