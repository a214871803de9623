import { describe, expect, it } from 'vitest';
import { AgentTracer, buildRedactor, resolveTracerOptions, TRACER_DEFAULTS } from '@agenttrace/tracer';
import { snapshot } from '../src/snapshot.js';
import { encodeEvent } from '../src/encode.js';
import { validateEvent, newEventId, type AgentEvent } from '@agenttrace/contract';

const noRedact = { redactString: undefined, redactKeys: new Set<string>(), maxDepth: 48 };

describe('redaction', () => {
  const { redactString, redactKeys } = buildRedactor({});
  const r = (s: string) => redactString!(s, 'payload.x');

  it('scrubs e-mail addresses', () => {
    expect(r('mail jane.doe+x@example.co.uk now')).toBe('mail [REDACTED:email] now');
  });

  it('scrubs card numbers that pass the Luhn check, keeps other digit runs', () => {
    expect(r('card 4111 1111 1111 1111 ok')).toBe('card [REDACTED:card] ok');
    expect(r('card 4111-1111-1111-1111')).toBe('card [REDACTED:card]');
    expect(r('order 4111111111111112')).toBe('order 4111111111111112');
    expect(r('amount 4500')).toBe('amount 4500');
  });

  it('redacts values under secret-looking keys and applies custom patterns and hooks', () => {
    const custom = buildRedactor({ patterns: [{ name: 'ssn', pattern: /\b\d{3}-\d{2}-\d{4}\b/ }], hook: (v) => v.replace('internal', '[hidden]') });
    const out = snapshot({ password: 'hunter2', note: 'ssn 123-45-6789 internal' }, { ...custom, maxDepth: 48 }, 'payload') as Record<string, string>;
    expect(out.password).toBe('[REDACTED:key]');
    expect(out.note).toBe('ssn [REDACTED:ssn] [hidden]');
    expect(redactKeys.has('api_key')).toBe(true);
  });

  it('can be turned off entirely', () => {
    const off = buildRedactor(false);
    expect(off.redactString).toBeUndefined();
    expect(snapshot({ password: 'x', m: 'a@b.io' }, { ...off, maxDepth: 48 }, 'p')).toEqual({ password: 'x', m: 'a@b.io' });
  });

  it('can keep e-mail scrubbing off while card scrubbing stays on', () => {
    const { redactString: only } = buildRedactor({ email: false });
    expect(only!('a@b.io 4111111111111111', 'p')).toBe('a@b.io [REDACTED:card]');
  });
});

describe('snapshot of values JSON cannot carry', () => {
  it('represents cycles, BigInt, functions, symbols, Maps, Sets, Errors and dates', () => {
    const cyclic: Record<string, unknown> = { name: 'root' };
    cyclic.self = cyclic;
    const value = {
      cyclic,
      big: 12345678901234567890n,
      fn: function namedFn() {},
      sym: Symbol('s'),
      map: new Map([['a', 1]]),
      set: new Set([1, 2]),
      err: new TypeError('bad'),
      when: new Date(0),
      nan: Number.NaN,
      skip: undefined,
      bytes: new Uint8Array(3),
    };
    const out = snapshot(value, noRedact, 'payload') as Record<string, unknown>;
    expect(() => JSON.stringify(out)).not.toThrow();
    expect(out.cyclic).toEqual({ name: 'root', self: '[Circular]' });
    expect(out.big).toBe('12345678901234567890n');
    expect(out.fn).toBe('[Function namedFn]');
    expect(out.sym).toBe('Symbol(s)');
    expect(out.map).toEqual({ a: 1 });
    expect(out.set).toEqual([1, 2]);
    expect((out.err as { name: string; message: string }).message).toBe('bad');
    expect(out.when).toBe('1970-01-01T00:00:00.000Z');
    expect(out.nan).toBe('NaN');
    expect('skip' in out).toBe(false);
    expect(out.bytes).toEqual({ type: 'Uint8Array', bytes: 3 });
  });

  it('keeps a shared (non-cyclic) object twice and cuts over-deep nesting', () => {
    const shared = { v: 1 };
    expect(snapshot({ a: shared, b: shared }, noRedact, 'p')).toEqual({ a: { v: 1 }, b: { v: 1 } });
    let deep: unknown = 'leaf';
    for (let i = 0; i < 100; i++) deep = { d: deep };
    const json = JSON.stringify(snapshot(deep, noRedact, 'p'));
    expect(json).toContain('[MaxDepth]');
  });
});

describe('options', () => {
  const base = { sessionId: 's1', agentId: 'a1', kafka: { brokers: ['127.0.0.1:9092'] } };

  it('applies defaults', () => {
    const o = resolveTracerOptions(base, {});
    expect(o.topic).toBe('agent-events');
    expect(o.maxEventBytes).toBe(TRACER_DEFAULTS.maxEventBytes);
    expect(o.deliveryTimeoutMs).toBe(60_000);
    expect(o.s3).toBeUndefined();
  });

  it.each([
    [{ sessionId: '' }, /options\.sessionId/],
    [{ agentId: 42 }, /options\.agentId/],
    [{ kafka: { brokers: [] } }, /options\.kafka\.brokers/],
    [{ kafka: { brokers: ['nohostport'] } }, /options\.kafka\.brokers has "nohostport"/],
    [{ topic: 'bad topic' }, /options\.topic/],
    [{ maxEventBytes: 10 }, /options\.maxEventBytes must be an integer >= 256/],
    [{ deliveryTimeoutMs: 1.5 }, /options\.deliveryTimeoutMs/],
    [{ maxRecordBytes: 2048, maxEventBytes: 4096 }, /options\.maxRecordBytes must be >= options\.maxEventBytes/],
    [{ s3: { endpoint: 'http://x' } }, /options\.s3\.bucket is required/],
    [{ onError: 'no' }, /options\.onError must be a function/],
  ])('rejects %j with a message naming the option', (patch, message) => {
    expect(() => resolveTracerOptions({ ...base, ...(patch as object) } as never, {})).toThrow(message);
  });

  it('takes brokers and topic from the environment', () => {
    const o = resolveTracerOptions({ sessionId: 's', agentId: 'a' }, { AGENTTRACE_BROKERS: 'h1:1,h2:2', AGENTTRACE_TOPIC: 't1' });
    expect(o.kafka.brokers).toEqual(['h1:1', 'h2:2']);
    expect(o.topic).toBe('t1');
  });
});

describe('encoding with the size cap and no S3', () => {
  const event = (input: unknown): AgentEvent => ({
    schema_version: 1,
    event_id: newEventId(),
    session_id: 's',
    agent_id: 'a',
    emitter_id: 'em_1',
    seq: 0,
    timestamp: new Date().toISOString(),
    event_type: 'tool_call',
    status: 'ok',
    payload: { tool: 't', input },
    context: {},
  });
  const opts = { redactString: undefined, redactKeys: new Set<string>(), maxEventBytes: 10_240, maxRecordBytes: 100_000, s3: undefined, s3Client: () => { throw new Error('no s3'); } };

  it('sends small events unchanged', async () => {
    const e = event({ a: 1 });
    const enc = await encodeEvent(e, opts);
    expect(JSON.parse(enc.value.toString())).toEqual(e);
    expect(enc.problem).toBeUndefined();
  });

  it('keeps an oversized field inline and marks the event when S3 is not configured', async () => {
    const enc = await encodeEvent(event('x'.repeat(20_000)), opts);
    const out = JSON.parse(enc.value.toString()) as AgentEvent;
    expect(out.payload.input).toBe('x'.repeat(20_000));
    expect(out.offload?.fields).toEqual(['payload.input']);
    expect(out.offload?.failed).toMatch(/no S3 bucket/);
    expect(enc.problem).toMatch(/sent inline, marked/);
    expect(validateEvent(out).ok).toBe(true);
  });

  it('truncates, with digest and preview, only what does not fit Kafka\'s record limit', async () => {
    const enc = await encodeEvent(event('y'.repeat(200_000)), opts);
    const out = JSON.parse(enc.value.toString()) as AgentEvent;
    const t = (out.payload.input as { $truncated: { size: number; sha256: string; preview: string } }).$truncated;
    expect(t.size).toBe(200_002);
    expect(t.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(out.offload?.failed).toMatch(/truncated to fit/);
    expect(enc.value.length).toBeLessThan(100_000);
  });
});

describe('encoding with redaction', () => {
  const base = (payload: Record<string, unknown>, agentId = 'a'): AgentEvent => ({
    schema_version: 1,
    event_id: newEventId(),
    session_id: 's-1',
    agent_id: agentId,
    emitter_id: 'em_1',
    seq: 7,
    timestamp: new Date().toISOString(),
    event_type: 'tool_call',
    status: 'ok',
    payload,
    context: { reasoning: 'mail ops@example.com', confidence: 0.5 },
  });
  const withKeys = (keys?: string[]) => ({ ...buildRedactor(keys ? { keys } : {}), maxEventBytes: 10_240, maxRecordBytes: 100_000, s3: undefined, s3Client: () => { throw new Error('no s3'); } });

  it('writes the same JSON as serializing the redacted event, envelope first', async () => {
    const e = base({ tool: 't', input: { note: 'card 4111 1111 1111 1111' } }, 'agent "quoted" \u2603\n');
    const enc = await encodeEvent(e, withKeys());
    const expected = { ...e, payload: { tool: 't', input: { note: 'card [REDACTED:card]' } }, context: { reasoning: 'mail [REDACTED:email]', confidence: 0.5 } };
    expect(enc.value.toString()).toBe(JSON.stringify(expected));
    expect(validateEvent(JSON.parse(enc.value.toString())).ok).toBe(true);
  });

  it('redacts payload fields named like envelope fields, and never the envelope itself', async () => {
    const e = base({ status: 'sent to jane@example.com', agent_id: 'bob@example.com' });
    const out = JSON.parse((await encodeEvent(e, withKeys(['status']))).value.toString()) as AgentEvent;
    expect(out.status).toBe('ok');
    expect(out.payload.status).toBe('[REDACTED:key]');
    expect(out.payload.agent_id).toBe('[REDACTED:email]');
    expect(out.agent_id).toBe('a');
  });
});

describe('fast path for values with nothing to redact', () => {
  class Invoice {
    constructor(readonly to = 'billing@example.com') {}
  }
  const deep = (n: number): unknown => (n === 0 ? 'ops@example.com' : { d: deep(n - 1) });
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const bare = Object.create(null) as Record<string, unknown>;
  bare.note = 'mail ops@example.com';
  const payloads: Array<[string, Record<string, unknown>]> = [
    ['plain', { tool: 't', input: { amount: 4500, ok: true, none: null, list: [1, 'a', null, undefined] } }],
    ['e-mail deep in an array', { input: [{ to: ['x', 'jane@example.com'] }] }],
    ['card number', { note: 'card 4111 1111 1111 1111' }],
    ['digits that are no card', { note: 'order 4111111111111112, amount 4500' }],
    ['secret key in mixed case', { input: { Api_Key: 'k-123', nested: { AUTHORIZATION: 'Bearer x' } } }],
    ['Map, Set, Error, Date, typed array', { m: new Map([['to', 'a@b.io']]), s: new Set(['c@d.io']), e: new Error('mail e@f.io'), at: new Date(0), bytes: new Uint8Array(3) }],
    ['class instance and toJSON', { inv: new Invoice(), j: { toJSON: () => 'x@y.io' } }],
    ['BigInt, NaN, Infinity, function, symbol', { big: 12n, nan: Number.NaN, inf: -Infinity, fn: () => 1, sym: Symbol('s') }],
    ['prototype-less object and boxed string', { bare, boxed: new String('z@w.io') }],
    ['nesting deeper than the cut', { deep: deep(60) }],
    ['a cycle', { cyclic }],
    ['unicode and control characters', { s: 'snow \u2603 \u0000 \n "quoted"' }],
    ['LLM messages with digits, one card among them', { input: [{ role: 'user', parts: [{ type: 'text', content: 'invoice 2026-0042 for cus_1234' }, { type: 'text', content: 'pay with 4111-1111-1111-1111 or mail a@b.io' }] }], model: 'gpt-4o', input_tokens: 1200 }],
  ];
  const opts = { ...buildRedactor({}), maxEventBytes: 1_000_000, maxRecordBytes: 2_000_000, s3: undefined, s3Client: () => { throw new Error('no s3'); } };
  const replacerOnly = { ...opts, mightRedact: undefined };
  const event = (payload: Record<string, unknown>): AgentEvent => ({
    schema_version: 1, event_id: 'evt_01JABCDEFGHJKMNPQRSTVWXYZ0', session_id: 's', agent_id: 'a', emitter_id: 'em_1', seq: 0,
    timestamp: '2026-01-01T00:00:00.000Z', event_type: 'custom', status: 'ok', payload: payload as AgentEvent['payload'], context: { reasoning: 'r' },
  });

  it.each(payloads)('writes what the redacting replacer writes: %s', async (_name, payload) => {
    const fast = await encodeEvent(event(payload), opts);
    const careful = await encodeEvent(event(payload), replacerOnly);
    expect(fast.value.toString()).toBe(careful.value.toString());
    expect(fast.value.toString()).not.toMatch(/@(example\.com|b\.io|d\.io|f\.io|y\.io|w\.io)|4111 1111|4111-1111|k-123|Bearer/);
  });

  it('redacts a copy: the caller\'s objects keep their text', async () => {
    const parts = [{ type: 'text', content: 'mail a@b.io' }, { type: 'text', content: 'order 1234' }];
    const payload = { input: [{ role: 'user', parts }] };
    const encoded = await encodeEvent(event(payload), opts);
    expect(encoded.value.toString()).toContain('[REDACTED:email]');
    expect(parts[0]!.content).toBe('mail a@b.io');
    expect(payload.input[0]!.parts).toBe(parts);
  });
});

describe('AgentTracer surface', () => {
  it('keeps the shared producer\'s delivery callbacks private: an agent holding a tracer cannot call them', () => {
    const methods = Object.getOwnPropertyNames(AgentTracer.prototype);
    // Public methods are still there (the check looks at the right object)...
    expect(methods).toEqual(expect.arrayContaining(['flush', 'close']));
    // ...and none of the callbacks the producer pool uses.
    expect(methods.filter((m) => ['onFailed', 'onConfirmed', 'onLost', 'onProducerError'].includes(m))).toEqual([]);
  });
});
