import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { agentEventSchema, parseEvent, validateEvent, newEventId, eventIdTime, nestingDepth, type AgentEvent } from '@agenttrace/contract';

function valid(): AgentEvent {
  return {
    schema_version: 1,
    event_id: newEventId(),
    session_id: 'sess_a1b2c3',
    agent_id: 'invoice-generator-v2',
    emitter_id: 'em_1',
    seq: 0,
    timestamp: '2026-01-15T14:23:11.847Z',
    event_type: 'tool_call',
    status: 'ok',
    payload: { tool: 'stripe.create_invoice', input: { customer_id: 'cus_xyz', amount: 4500 }, output: { invoice_id: 'inv_abc' }, latency_ms: 1240 },
    context: { parent_event_id: newEventId(), reasoning: 'Customer requested invoice for milestone 2', model: 'claude-sonnet-4-5', confidence: 0.94 },
  };
}

describe('validateEvent', () => {
  it('accepts the design example', () => {
    expect(validateEvent(valid())).toEqual({ ok: true, event: expect.objectContaining({ session_id: 'sess_a1b2c3' }) });
  });

  it.each([
    ['missing session_id', (e: Record<string, unknown>) => delete e.session_id, /session_id/],
    ['wrong type for seq', (e: Record<string, unknown>) => (e.seq = '1'), /\/seq/],
    ['unknown event_type', (e: Record<string, unknown>) => (e.event_type = 'teleport'), /\/event_type/],
    ['confidence out of range', (e: Record<string, unknown>) => ((e.context as Record<string, unknown>).confidence = 1.5), /confidence/],
    ['bad timestamp', (e: Record<string, unknown>) => (e.timestamp = 'yesterday'), /timestamp/],
    ['bad event id', (e: Record<string, unknown>) => (e.event_id = 'evt_1'), /event_id/],
    ['extra top-level field', (e: Record<string, unknown>) => (e.surprise = 1), /surprise/],
  ])('rejects %s with a schema violation naming the field', (_name, mutate, where) => {
    const e = valid() as unknown as Record<string, unknown>;
    mutate(e);
    const r = validateEvent(e);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe('schema_violation');
      expect(r.detail).toMatch(where);
    }
  });

  it('rejects an unknown schema version separately', () => {
    const r = validateEvent({ ...valid(), schema_version: 2 });
    expect(r).toMatchObject({ ok: false, reason: 'unknown_schema_version' });
  });
});

describe('parseEvent', () => {
  const bytes = (v: unknown) => Buffer.from(JSON.stringify(v));

  it('parses a valid record and checks the key', () => {
    const e = valid();
    expect(parseEvent(bytes(e), { key: 'sess_a1b2c3' }).ok).toBe(true);
    expect(parseEvent(bytes(e), { key: Buffer.from('other') })).toMatchObject({ ok: false, reason: 'key_mismatch' });
    expect(parseEvent(bytes(e), { key: null })).toMatchObject({ ok: false, reason: 'key_mismatch' });
  });

  it('names each kind of bad record', () => {
    expect(parseEvent(Buffer.from([0x7b, 0xff, 0xfe]))).toMatchObject({ ok: false, reason: 'invalid_utf8' });
    expect(parseEvent(Buffer.from('{"truncated": '))).toMatchObject({ ok: false, reason: 'not_json' });
    expect(parseEvent(null)).toMatchObject({ ok: false, reason: 'not_json' });
    expect(parseEvent(Buffer.alloc(2000, 0x20), { maxBytes: 1000 })).toMatchObject({ ok: false, reason: 'too_large' });
    expect(parseEvent(bytes([1, 2, 3]))).toMatchObject({ ok: false, reason: 'schema_violation' });
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = [deep];
    expect(parseEvent(bytes({ ...valid(), payload: { input: deep } }))).toMatchObject({ ok: false, reason: 'too_deep' });
  });

  it('survives nesting deep enough to break a recursive walker', () => {
    const text = '['.repeat(100_000) + ']'.repeat(100_000);
    const r = parseEvent(Buffer.from(text));
    expect(r.ok).toBe(false);
  });
});

describe('event ids', () => {
  it('are unique, time-ordered and carry their time', () => {
    const ids = Array.from({ length: 1000 }, () => newEventId());
    expect(new Set(ids).size).toBe(1000);
    expect([...ids].sort()).toEqual(ids);
    const t = Date.now();
    expect(Math.abs(eventIdTime(newEventId(t))! - t)).toBe(0);
    expect(eventIdTime('nope')).toBeUndefined();
  });

  it('nestingDepth counts levels iteratively', () => {
    expect(nestingDepth({ a: [{ b: 1 }] }, 64)).toBe(3);
    expect(nestingDepth('x', 64)).toBe(0);
  });
});

describe('the event schema', () => {
  it('is a valid JSON Schema 2020-12 document', () => {
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    expect(ajv.validateSchema(agentEventSchema)).toBe(true);
    expect(ajv.errors ?? null).toBeNull();
  });
});

describe('the validator compiled ahead of time', () => {
  it('is up to date with schema/agent-event.v1.json', () => {
    const script = fileURLToPath(new URL('../scripts/generate-validator.mjs', import.meta.url));
    const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
