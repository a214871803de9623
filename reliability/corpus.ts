/**
 * A corpus of malformed and hostile records, produced straight to the topic (not through the
 * tracer) to prove consumers neither crash nor stall on them and dead-letter each with a reason.
 * Deterministic for a given seed, so a failure can be reproduced.
 */
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import type { RawRecord } from '../test-support/stack.js';

export interface CorpusRecord extends RawRecord {
  /** What is wrong with it (for test messages). */
  kind: string;
  /** The DLQ reason a consumer must give, or undefined when the record is valid (hostile content only). */
  expectReason: string | undefined;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function baseEvent(sessionId: string, seq: number): AgentEvent {
  return {
    schema_version: 1,
    event_id: newEventId(),
    session_id: sessionId,
    agent_id: 'corpus-agent',
    emitter_id: 'em_corpus',
    seq,
    timestamp: new Date().toISOString(),
    event_type: 'tool_call',
    status: 'ok',
    payload: { tool: 'corpus.tool', input: { n: seq }, output: { ok: true }, latency_ms: 1 },
    context: {},
  };
}

const ESCAPES = ['\u001b[2J\u001b[H', '\u001b]0;pwned\u0007', '\u001b[31mred\u001b[0m', '\u202eevil\u202c', '\u2066iso\u2069', '\r\rline', '\u0000nul', '\u009b31m'];

/**
 * `count` bad records (rejected by any consumer) plus `hostileValid` valid events whose strings
 * carry terminal escapes and bidi controls (accepted, and must be neutralized when printed).
 */
export function makeCorpus(opts: { count: number; hostileValid?: number; sessionPrefix: string; seed?: number; /** the consumer's record limit (keep it under the broker's 1 MB) */ maxRecordBytes: number }): CorpusRecord[] {
  const rand = rng(opts.seed ?? 42);
  const out: CorpusRecord[] = [];
  const maxBytes = opts.maxRecordBytes;
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const kinds: Array<(i: number) => CorpusRecord> = [
    (i) => ({ kind: 'invalid JSON', key: `${opts.sessionPrefix}-bad-${i}`, value: `{"schema_version":1, "event_id": ${'x'.repeat(i % 50)}`, expectReason: 'not_json' }),
    (i) => {
      const json = Buffer.from(JSON.stringify(baseEvent(`${opts.sessionPrefix}-bad-${i}`, i)));
      // Cut inside a multi-byte character: invalid UTF-8.
      return { kind: 'truncated UTF-8', key: `${opts.sessionPrefix}-bad-${i}`, value: Buffer.concat([json.subarray(0, Math.max(1, json.length - 5)), Buffer.from([0xe2, 0x82])]), expectReason: 'invalid_utf8' };
    },
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i) as unknown as Record<string, unknown>;
      const wrong: Record<string, unknown[]> = {
        seq: ['forty-two', -1, 1.5, null, []],
        timestamp: [42, 'yesterday', null, {}],
        event_type: [42, 'teleport', null],
        status: [true, 'maybe', 0],
        payload: ['text', 42, [], null],
        agent_id: [42, '', null, { id: 1 }],
      };
      const field = pick(Object.keys(wrong));
      e[field] = pick(wrong[field]!);
      return { kind: `wrong type for ${field}`, key: String(e.session_id), value: JSON.stringify(e), expectReason: 'schema_violation' };
    },
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i) as unknown as Record<string, unknown>;
      delete e[pick(['event_id', 'session_id', 'agent_id', 'seq', 'timestamp', 'event_type', 'payload', 'context', 'emitter_id', 'status'])];
      return { kind: 'missing field', key: `${opts.sessionPrefix}-bad-${i}`, value: JSON.stringify(e), expectReason: 'schema_violation' };
    },
    (i) => {
      const e = { ...baseEvent(`${opts.sessionPrefix}-bad-${i}`, i), schema_version: pick([0, 2, 99, '1', '1.0']) };
      return { kind: 'unknown schema version', key: e.session_id, value: JSON.stringify(e), expectReason: 'unknown_schema_version' };
    },
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i);
      let deep: unknown = 'bottom';
      for (let d = 0; d < 100 + (i % 400); d++) deep = { d: deep };
      e.payload.input = deep;
      return { kind: 'deeply nested object', key: e.session_id, value: JSON.stringify(e), expectReason: 'too_deep' };
    },
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i);
      return { kind: 'key does not match session_id', key: `${opts.sessionPrefix}-other-${i}`, value: JSON.stringify(e), expectReason: 'key_mismatch' };
    },
    (i) => ({ kind: 'not an object', key: `${opts.sessionPrefix}-bad-${i}`, value: pick(['[]', '"text"', '42', 'null', 'true']), expectReason: 'schema_violation' }),
    (i) => ({ kind: 'empty value', key: `${opts.sessionPrefix}-bad-${i}`, value: '', expectReason: 'not_json' }),
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i) as unknown as Record<string, unknown>;
      (e as { event_id: string }).event_id = `evt_${'\u001b[2J'}`;
      return { kind: 'escape sequence in an id', key: String(e.session_id), value: JSON.stringify(e), expectReason: 'schema_violation' };
    },
  ];
  // Big records are few (every 250th), so the corpus stays a few tens of MB.
  const big: Array<(i: number) => CorpusRecord> = [
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i);
      e.payload.output = 'z'.repeat(maxBytes + 10);
      return { kind: 'oversized value', key: e.session_id, value: JSON.stringify(e), expectReason: 'too_large' };
    },
    (i) => {
      const e = baseEvent(`${opts.sessionPrefix}-bad-${i}`, i);
      e.payload.input = Array.from({ length: Math.ceil(maxBytes / 5) + (i % 1000) }, (_, k) => k);
      const value = JSON.stringify(e);
      return { kind: 'huge array', key: e.session_id, value, expectReason: Buffer.byteLength(value) > maxBytes ? 'too_large' : undefined };
    },
  ];
  for (let i = 0; i < opts.count; i++) {
    out.push(i % 250 === 0 ? big[(i / 250) % 2]!(i) : kinds[i % kinds.length]!(i));
  }
  for (let i = 0; i < (opts.hostileValid ?? 0); i++) {
    const sessionId = `${opts.sessionPrefix}-hostile-${i % 10}`;
    const e = baseEvent(sessionId, Math.floor(i / 10));
    e.agent_id = `agent${pick(ESCAPES)}`;
    e.payload.tool = `tool${pick(ESCAPES)}`;
    e.payload.output = { text: `result ${pick(ESCAPES)} done`, more: pick(ESCAPES) };
    e.context.reasoning = `because ${pick(ESCAPES)}`;
    out.push({ kind: 'hostile strings (valid event)', key: sessionId, value: JSON.stringify(e), expectReason: undefined });
  }
  return out;
}
