import { describe, expect, it } from 'vitest';
import { seqAnomalies } from '@agenttrace/sessions';
import { makeEvent } from '../../../test-support/stack.js';

describe('seqAnomalies', () => {
  it('is silent for a contiguous run that starts after 0 (a time-range read)', () => {
    const events = [5, 6, 7].map((seq) => makeEvent({ session_id: 's', emitter_id: 'a', seq }));
    expect(seqAnomalies(events)).toEqual([]);
  });

  it('reports gaps as ranges, per emitter', () => {
    const events = [0, 1, 4, 5, 9].map((seq) => makeEvent({ session_id: 's', emitter_id: 'a', seq }));
    events.push(...[0, 1, 2].map((seq) => makeEvent({ session_id: 's', emitter_id: 'b', seq })));
    const out = seqAnomalies(events);
    expect(out).toHaveLength(1);
    expect(out[0]).toContain('emitter a');
    expect(out[0]).toContain('5 seq missing (2-3, 6-8)');
  });

  it('tells a redelivered event from two events claiming one seq', () => {
    const a = makeEvent({ session_id: 's', emitter_id: 'a', seq: 0 });
    const b = makeEvent({ session_id: 's', emitter_id: 'a', seq: 1 });
    const c = makeEvent({ session_id: 's', emitter_id: 'a', seq: 1 });
    const out = seqAnomalies([a, a, b, c]);
    expect(out).toEqual([
      expect.stringContaining(`seq 0 delivered 2 times (event ${a.event_id})`),
      expect.stringContaining('seq 1 used by 2 different events'),
    ]);
  });

  it('bounds its output', () => {
    const events = Array.from({ length: 60 }, (_, i) => makeEvent({ session_id: 's', emitter_id: `e${i}`, seq: 0 })).flatMap((e) => [e, e]);
    const out = seqAnomalies(events);
    expect(out).toHaveLength(21);
    expect(out[20]).toBe('... and 40 more seq anomalies');
  });
});
