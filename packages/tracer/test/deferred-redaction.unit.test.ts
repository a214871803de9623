import { describe, expect, it } from 'vitest';
import { buildRedactor } from '@agenttrace/tracer';
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import { BIG_STRING_CHARS, encodeEvent, type EncodeOptions } from '../src/encode.js';
import { shrinkJson } from '../src/shrink.js';

/**
 * Big strings of an oversized event are redacted by the offload worker instead of the agent's
 * thread (#14). Here the "worker" runs shrinkJson in-thread: the record must be byte for byte
 * what redaction on the agent's thread writes.
 */
describe('redaction deferred to the offload worker', () => {
  const event = (payload: Record<string, unknown>, context: Record<string, unknown> = {}): AgentEvent => ({
    schema_version: 1,
    event_id: newEventId(),
    session_id: 's',
    agent_id: 'a',
    emitter_id: 'em_1',
    seq: 0,
    timestamp: '2026-01-01T00:00:00.000Z',
    event_type: 'tool_call',
    status: 'ok',
    payload,
    context,
  });
  const base = (): EncodeOptions => ({
    ...buildRedactor({}),
    maxEventBytes: 10_240,
    maxRecordBytes: 400_000,
    s3: undefined,
    s3Client: () => {
      throw new Error('no s3');
    },
  });
  let deferredCalls = 0;
  const deferred = (): EncodeOptions => {
    const o = base();
    o.shrink = (json, so) => {
      if (so.redact) deferredCalls++;
      return shrinkJson(json, so, o.s3Client);
    };
    o.deferredRedact = { options: {}, bigStringChars: BIG_STRING_CHARS };
    return o;
  };
  const text = (n: number) => `mail jane.doe@example.com card 4111 1111 1111 1111 line 1234\n`.repeat(n);

  // [name, event, whether its big strings go to the worker unredacted]
  const cases: Array<[string, AgentEvent, boolean]> = [
    ['one big string with e-mails and a card number', event({ tool: 't', output: text(2_000) }), true],
    ['big strings nested in arrays and objects, small ones beside them', event({ tool: 't', output: { parts: [text(1_500), 'ops@example.com', { deep: text(1_200) }], note: 'x@y.io' } }, { reasoning: text(1_100) }), true],
    ['big string truncated to fit the record limit', event({ tool: 't', output: text(10_000) }), true],
    // A key to redact sends its whole section through the replacer, here: nothing is deferred.
    ['a secret key before a big string', event({ tool: 't', input: { password: 'hunter2' }, output: text(1_500) }), false],
  ];
  for (const [name, e, defers] of cases) {
    it(name, async () => {
      const here = await encodeEvent(structuredClone(e), base());
      const before = deferredCalls;
      const there = await encodeEvent(structuredClone(e), deferred());
      // The big strings really were left to the "worker".
      expect(deferredCalls).toBe(before + (defers ? 1 : 0));
      expect(there.value.toString()).toBe(here.value.toString());
      expect(there.value.toString()).not.toMatch(/jane\.doe@example\.com|4111 1111 1111 1111|hunter2/);
      expect(there.problem).toBe(here.problem);
    });
  }

  it('an event that fits after all is redacted on the calling thread', async () => {
    const o = deferred();
    o.maxEventBytes = 1_000_000;
    o.maxRecordBytes = 1_000_000;
    let shrinkCalls = 0;
    const inner = o.shrink!;
    o.shrink = (json, so) => {
      shrinkCalls++;
      return inner(json, so);
    };
    const enc = await encodeEvent(event({ tool: 't', output: text(1_200) }), o);
    expect(shrinkCalls).toBe(0);
    expect(enc.value.toString()).not.toMatch(/jane\.doe@example\.com|4111 1111 1111 1111/);
  });
});
