import { describe, expect, it } from 'vitest';
import { compareSessions, comparisonJson, formatPath, makeChalk, parsePathPattern, pathMatches, prune, renderComparison, stableStringify, type RenderOptions } from '../src/index.js';
import { SessionBuilder, invoiceSession } from './fixtures.js';

const HOSTILE = 'pwned\u001b[2J\u001b]0;evil\u0007\u202Egnp.exe\u009b31m';
const opts = (over: Partial<RenderOptions> = {}): RenderOptions => ({ chalk: makeChalk(false), labelA: 'sess_a (kafka)', labelB: 'sess_b (kafka)', view: 'unified', width: 160, valueWidth: 60, ...over });
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('text rendering', () => {
  it('collapses matching runs and keeps N steps of context around changes', () => {
    const a = new SessionBuilder('a');
    const b = new SessionBuilder('b');
    for (let i = 0; i < 40; i++) {
      a.tool('t', { i });
      b.tool('t', { i: i === 20 ? 'x' : i });
    }
    const out = renderComparison(compareSessions(a.events, b.events, { context: 2 }), opts(), false);
    expect(out).toContain('… 18 matching steps …');
    expect(out).toContain('… 17 matching steps …');
    expect(out).toMatch(/~ A#21 {3}B#21 {3}tool_call t \[invoice-agent\]/);
    expect(out).toContain('payload.input.i: 20 → "x"');
    expect(out.match(/^= /gm)).toHaveLength(4);
    expect(out).toContain('39 same, 1 changed, 0 only in A, 0 only in B');
  });

  it('side by side puts A left and B right with a marker between', () => {
    const cmp = compareSessions(invoiceSession('a'), invoiceSession('b', { retries: 1, decision: 'send_email' }));
    const out = renderComparison(cmp, opts({ view: 'side-by-side', width: 120 }), false);
    const lines = out.split('\n');
    expect(lines.some((l) => /^A sess_a \(kafka\) +│ B sess_b \(kafka\)$/.test(l))).toBe(true);
    expect(lines.some((l) => /^ {58} \+ B#4 +tool_call stripe\.create_invoice \[invoice-agent\] ERROR/.test(l))).toBe(true);
    expect(lines.some((l) => /^A#5 +decision skip_email \[invoice-agent\] +~ B#6 +decision send_email/.test(l))).toBe(true);
  });

  it('the divergence names both sides, their reasoning, model and confidence', () => {
    const cmp = compareSessions(invoiceSession('a'), invoiceSession('b', { amount: 1 }));
    const out = renderComparison(cmp, opts(), true);
    expect(out).toContain('First divergence at A#4 / B#4: the same kind of step with different fields');
    expect(out).toContain('before it (3 matching steps)');
    expect(out.match(/model claude-sonnet-4-5 · confidence 0\.94 · latency 300ms/g)).toHaveLength(2);
    expect(out.match(/reasoning: Milestone 2 completion/g)).toHaveLength(2);
    expect(out).toContain('payload.input.amount: 4500 → 1');
    expect(out).toContain('Different.');
    const same = renderComparison(compareSessions(invoiceSession('a'), invoiceSession('b')), opts(), true);
    expect(same).toContain('No divergence');
    expect(same).toContain('Same: no differences');
    const failed = renderComparison(compareSessions(invoiceSession('a'), invoiceSession('b', { retries: 1 })), opts(), true);
    expect(failed).toContain('First divergence at B#4: a step only in B (sess_b (kafka))');
    expect(failed).toContain('error: ToolError: rate limited');
  });

  it('neutralizes control characters in labels, values, reasoning and names', () => {
    const a = new SessionBuilder('a', HOSTILE).tool(HOSTILE, { q: HOSTILE }).decision(HOSTILE, HOSTILE).events;
    const b = new SessionBuilder('b', HOSTILE).tool(HOSTILE, { q: 'calm' }).decision('x', `${HOSTILE}!`).events;
    const cmp = compareSessions(a, b);
    for (const view of ['unified', 'side-by-side'] as const) {
      for (const div of [false, true]) {
        const out = renderComparison(cmp, opts({ view, labelA: HOSTILE, labelB: HOSTILE }), div);
        expect(RAW_CONTROL.test(out), `${view} ${div}`).toBe(false);
        expect(out).toContain('pwned\\e[2J');
      }
    }
  });

  it('colors only when the chalk has a level', () => {
    const cmp = compareSessions(invoiceSession('a'), invoiceSession('b', { amount: 1 }));
    expect(renderComparison(cmp, opts(), false)).not.toContain('\u001b[');
    expect(renderComparison(cmp, opts({ chalk: makeChalk(true) }), false)).toContain('\u001b[');
  });

  it('prints latency and cost deltas per step and in the summary', () => {
    const a = new SessionBuilder('a').llm('m', 'p', 'o', 0.01, 1000).events;
    const b = new SessionBuilder('b').llm('m', 'p', 'o', 0.0125, 1500).events;
    const out = renderComparison(compareSessions(a, b, { context: 5 }), opts(), false);
    expect(out).toContain('all 1 compared steps match');
    expect(out).toContain('latency  A 1.00s   B 1.50s   (+500ms)');
    expect(out).toContain('cost     A $0.0100   B $0.0125   (+$0.0025)');
  });
});

describe('json document', () => {
  it('has the documented shape', () => {
    const cmp = compareSessions(invoiceSession('a'), invoiceSession('b', { amount: 1, retries: 1 }));
    const doc = comparisonJson(cmp, { kind: 'session', name: 'a', source: 'kafka', events: 8, warnings: [] }, { kind: 'session', name: 'b', source: 'kafka', events: 9, warnings: [] }) as Record<string, any>;
    expect(doc.format).toBe('kdiff.compare.v1');
    expect(doc.identical).toBe(false);
    expect(doc.summary).toMatchObject({ same: 7, changed: 1, only_in_a: 0, only_in_b: 1, error_only_in: 'b' });
    expect(doc.divergence.op).toBe('added');
    expect(doc.divergence.a).toMatchObject({ label: 'stripe.create_invoice', reasoning: 'Milestone 2 completion', confidence: 0.94, model: 'claude-sonnet-4-5' });
    expect(doc.entries).toHaveLength(9);
    expect(doc.entries[3]).toMatchObject({ op: 'added', a: null, b: { event_type: 'tool_call', status: 'error', index: 3 } });
    expect(doc.entries[4].changes).toEqual([{ path: 'payload.input.amount', kind: 'changed', a: 4500, b: 1 }]);
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
  });
});

describe('paths', () => {
  it('parses, prints and matches ignore patterns', () => {
    expect(parsePathPattern('payload.input.items[2].price')).toEqual(['payload', 'input', 'items', '2', 'price']);
    expect(formatPath(['payload', 'input', 'items', 2, 'price'])).toBe('payload.input.items[2].price');
    expect(formatPath(['payload', 'output', 'a.b c'])).toBe('payload.output["a.b c"]');
    const p = ['payload.**.trace_id', '*.request_id', 'context.reasoning'].map((x) => parsePathPattern(x));
    expect(pathMatches(['payload', 'trace_id'], p)).toBe(true);
    expect(pathMatches(['payload', 'a', 'b', 3, 'trace_id'], p)).toBe(true);
    expect(pathMatches(['context', 'trace_id'], p)).toBe(false);
    expect(pathMatches(['payload', 'request_id'], p)).toBe(true);
    expect(pathMatches(['payload', 'input', 'request_id'], p)).toBe(false);
    expect(pathMatches(['context', 'reasoning', 'x'], p)).toBe(true);
    expect(() => parsePathPattern('a..b')).toThrow(/invalid path/);
    expect(() => parsePathPattern(' ')).toThrow(/empty path/);
  });

  it('prune shares untouched subtrees and keeps array positions', () => {
    const input = { big: { deep: [1, 2, 3] } };
    const v = { payload: { input, output: { items: [{ id: 1, n: 1 }, { id: 2, n: 2 }] } }, timestamp: 't' };
    const out = prune(v, ['timestamp', 'payload.output.items[0]', 'payload.output.items.*.id'].map((x) => parsePathPattern(x)));
    expect(out).toEqual({ payload: { input, output: { items: [null, { n: 2 }] } } });
    expect(out.payload.input).toBe(input);
    expect(v.timestamp).toBe('t');
  });

  it('stable JSON text does not depend on key order', () => {
    expect(stableStringify({ b: 1, a: [{ d: 1, c: 2 }], 'x"y': null })).toBe(stableStringify({ 'x"y': null, a: [{ c: 2, d: 1 }], b: 1 }));
    expect(stableStringify({ a: undefined, b: 1 })).toBe('{"b":1}');
  });
});
