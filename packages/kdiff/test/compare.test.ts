import { describe, expect, it } from 'vitest';
import { compareExpected, compareSessions, parseExpected, snapshotSession, type Comparison } from '../src/index.js';
import { SessionBuilder, invoiceSession } from './fixtures.js';

const ops = (c: Comparison): string => c.entries.map((e) => ({ same: '=', changed: '~', removed: '-', added: '+' })[e.op]).join('');

describe('compareSessions', () => {
  it('finds two runs of the same flow identical although ids, clocks, seqs, latency and cost differ', () => {
    const a = invoiceSession('sess_a', { latency: 300 });
    const b = invoiceSession('sess_b', { latency: 420 });
    expect(a[1]!.event_id).not.toBe(b[1]!.event_id);
    const c = compareSessions(a, b);
    expect(c.identical).toBe(true);
    expect(ops(c)).toBe('='.repeat(a.length));
    expect(c.divergence).toBeUndefined();
    // Latency is not a difference but is reported.
    const invoice = c.entries.find((e) => e.a?.label === 'stripe.create_invoice')!;
    expect(invoice.latencyDeltaMs).toBe(120);
    expect(c.summary.latencyDeltaMs).toBe(120);
  });

  it('reports one changed tool input as a changed step with the nested path', () => {
    const c = compareSessions(invoiceSession('sess_a'), invoiceSession('sess_b', { amount: 45000 }), { context: 2 });
    expect(c.identical).toBe(false);
    expect(ops(c)).toBe('===~====');
    const changed = c.entries[3]!;
    expect(changed.changes).toEqual([{ path: 'payload.input.amount', kind: 'changed', a: 4500, b: 45000 }]);
    expect(c.summary).toMatchObject({ same: 7, changed: 1, onlyInA: 0, onlyInB: 0 });
    const d = c.divergence!;
    expect(d.entry).toBe(3);
    expect(d.context.map((e) => e.a!.label)).toEqual(['crm.lookup', 'claude-sonnet-4-5']);
    expect(d.a!.reasoning).toBe('Milestone 2 completion');
    expect(d.a!.confidence).toBe(0.94);
    // The model in effect at the tool call is the one of the LLM call before it.
    expect(d.a!.model).toBe('claude-sonnet-4-5');
  });

  it('keeps the alignment after an inserted retry loop', () => {
    const a = invoiceSession('sess_a');
    const b = invoiceSession('sess_b', { retries: 3 });
    const c = compareSessions(a, b);
    expect(b.length).toBe(a.length + 3);
    // The three failed attempts are only in B; every step after them is matched again.
    expect(c.summary).toMatchObject({ same: a.length, changed: 0, onlyInA: 0, onlyInB: 3 });
    const tail = c.entries.slice(-4);
    expect(tail.every((e) => e.op === 'same' && e.b!.index === e.a!.index + 3)).toBe(true);
    expect(c.entries.filter((e) => e.op === 'added').every((e) => e.b!.status === 'error' && e.b!.label === 'stripe.create_invoice')).toBe(true);
    expect(c.summary.errorOnlyIn).toBe('b');
    expect(c.summary.b.errors).toBe(3);
    expect(c.summary.b.firstError!.index).toBe(3);
  });

  it('shows a different decision as a changed decision with both reasonings', () => {
    const a = invoiceSession('sess_a');
    const b = invoiceSession('sess_b', { decision: 'send_email' });
    expect(b[4]!.event_type).toBe('decision');
    (b[4]!.context as Record<string, unknown>).reasoning = 'Customer asked for a copy';
    const c = compareSessions(a, b);
    expect(ops(c)).toBe('====~===');
    expect(c.entries[4]!.changes).toEqual([
      { path: 'context.reasoning', kind: 'changed', a: 'Customer disabled notifications', b: 'Customer asked for a copy' },
      { path: 'payload.action', kind: 'changed', a: 'skip_email', b: 'send_email' },
    ]);
    expect(c.divergence!.a!.reasoning).toBe('Customer disabled notifications');
    expect(c.divergence!.b!.reasoning).toBe('Customer asked for a copy');
  });

  it('aligns sub-agent steps by agent and reports a sub-agent that did something else', () => {
    const build = (id: string, query: string, extraTool: boolean) => {
      const s = new SessionBuilder(id).start();
      const deleg = s.add('delegation', { subagent_id: 'research-agent', task: { topic: 'competitors' }, latency_ms: 900 });
      s.events.pop(); // the delegation event is emitted after its children; its id is known up front
      s.add('tool_call', { tool: 'web.search', input: { q: query }, output: { hits: 3 }, latency_ms: 300 }, { agent_id: 'research-agent', context: { parent_event_id: deleg.event_id } });
      if (extraTool) s.add('tool_call', { tool: 'web.fetch', input: { url: 'https://example.com' }, output: {}, latency_ms: 200 }, { agent_id: 'research-agent', context: { parent_event_id: deleg.event_id } });
      s.events.push(deleg);
      s.tool('report.write', { pages: 2 });
      return s.end().events;
    };
    const c = compareSessions(build('sess_a', 'acme competitors', false), build('sess_b', 'acme rivals', true));
    expect(ops(c)).toBe('=~+===');
    expect(c.entries[1]!.a!.agentId).toBe('research-agent');
    expect(c.entries[1]!.a!.depth).toBe(1);
    expect(c.entries[1]!.changes).toEqual([{ path: 'payload.input.q', kind: 'changed', a: 'acme competitors', b: 'acme rivals' }]);
    expect(c.entries[2]!.b!.label).toBe('web.fetch');
    // Only the sub-agent's steps.
    const sub = compareSessions(build('sess_a', 'x', false), build('sess_b', 'x', true), { agents: ['research-agent'] });
    expect(ops(sub)).toBe('=+');
    // Only the main agent: the sub-agent's extra work is out of scope.
    expect(compareSessions(build('sess_a', 'x', false), build('sess_b', 'y', true), { agents: ['invoice-agent'] }).identical).toBe(true);
  });

  it('applies --ignore paths (exact, array index, * and **) to both signatures and field diffs', () => {
    const a = invoiceSession('sess_a', { requestId: 'req_1' });
    const b = invoiceSession('sess_b', { requestId: 'req_2' });
    const plain = compareSessions(a, b);
    expect(plain.entries[1]!.changes).toEqual([{ path: 'payload.output.request_id', kind: 'changed', a: 'req_1', b: 'req_2' }]);
    expect(compareSessions(a, b, { ignore: ['payload.output.request_id'] }).identical).toBe(true);
    expect(compareSessions(a, b, { ignore: ['*.output.request_id'] }).identical).toBe(true);
    expect(compareSessions(a, b, { ignore: ['**.request_id'] }).identical).toBe(true);
    expect(compareSessions(a, b, { ignore: ['payload.input.request_id'] }).identical).toBe(false);
    // An ignored input field also leaves the signature: the steps align as same.
    const x = new SessionBuilder('x').tool('t', { items: [{ id: 'a1', n: 1 }], trace: 't1' }).events;
    const y = new SessionBuilder('y').tool('t', { items: [{ id: 'b7', n: 1 }], trace: 't2' }).events;
    expect(ops(compareSessions(x, y))).toBe('~');
    expect(compareSessions(x, y).entries[0]!.changes.map((ch) => ch.path)).toEqual(['payload.input.items[0].id', 'payload.input.trace']);
    expect(compareSessions(x, y, { ignore: ['payload.input.items[0].id', 'payload.input.trace'] }).identical).toBe(true);
    expect(compareSessions(x, y, { ignore: ['payload.input.items[*].id', 'payload.**.trace'] }).identical).toBe(true);
  });

  it('compares timestamps and ids only without the default ignores', () => {
    const a = invoiceSession('sess_a');
    const b = invoiceSession('sess_a');
    const c = compareSessions(a, b, { defaultIgnore: false });
    expect(c.identical).toBe(false);
    expect(c.entries[0]!.changes.map((ch) => ch.path)).toContain('event_id');
    expect(compareSessions(a, b).identical).toBe(true);
  });

  it('filters by event type', () => {
    const a = invoiceSession('sess_a');
    const b = invoiceSession('sess_b', { decision: 'send_email', amount: 1 });
    const tools = compareSessions(a, b, { types: ['tool_call'] });
    expect(tools.entries.every((e) => e.a!.eventType === 'tool_call')).toBe(true);
    expect(ops(tools)).toBe('=~==');
    expect(compareSessions(a, b, { types: ['decision'] }).entries[0]!.changes[0]!.path).toBe('payload.action');
    expect(compareSessions(a, b, { types: ['llm_call', 'session_start'] }).identical).toBe(true);
  });

  it('sums latency and cost per side and reports an error on one side only', () => {
    const a = new SessionBuilder('a').start().llm('m', 'p', 'o', 0.01, 1000).tool('pay', { n: 1 }, { ok: true }, {}, 200).end('ok').events;
    const b = new SessionBuilder('b').start().llm('m', 'p', 'o', 0.03, 1500).failedTool('pay', { n: 1 }, 'card_declined', 40).end('error').events;
    const c = compareSessions(a, b);
    expect(ops(c)).toBe('==~~');
    expect(c.summary.a.latencyMs).toBe(1200);
    expect(c.summary.b.latencyMs).toBe(1540);
    expect(c.summary.latencyDeltaMs).toBe(340);
    expect(c.summary.costDeltaUsd).toBeCloseTo(0.02, 10);
    expect(c.entries[1]!.costDeltaUsd).toBeCloseTo(0.02, 10);
    expect(c.entries[2]!.latencyDeltaMs).toBe(-160);
    expect(c.summary.errorOnlyIn).toBe('b');
    expect(c.summary.a.outcome).toBe('ok');
    expect(c.summary.b.outcome).toBe('error');
    const paths = c.entries[2]!.changes.map((ch) => `${ch.kind} ${ch.path}`);
    expect(paths).toEqual(['added payload.error', 'removed payload.output', 'changed status']);
  });

  it('reports steps missing at the end and the divergence there', () => {
    const a = invoiceSession('sess_a');
    const b = a.slice(0, 4).map((e) => ({ ...e, session_id: 'sess_b' }));
    const c = compareSessions(a, b, { context: 1 });
    expect(ops(c)).toBe('====----');
    expect(c.divergence!.entry).toBe(4);
    expect(c.divergence!.context).toHaveLength(1);
    expect(c.divergence!.a!.eventType).toBe('decision');
    expect(c.divergence!.b).toBeUndefined();
  });

  it('pairs same-kind steps inside a replaced run and leaves the rest one-sided', () => {
    const a = new SessionBuilder('a').tool('x', 1).tool('pay', { n: 1 }).tool('mail', 1).tool('z', 1).events;
    const b = new SessionBuilder('b').tool('x', 1).tool('audit', 1).tool('pay', { n: 2 }).tool('z', 1).events;
    const c = compareSessions(a, b);
    expect(c.entries.map((e) => `${e.op}:${e.a?.label ?? ''}/${e.b?.label ?? ''}`)).toEqual(['same:x/x', 'added:/audit', 'changed:pay/pay', 'removed:mail/', 'same:z/z']);
  });

  it('is symmetric in its counts', () => {
    const a = invoiceSession('sess_a');
    const b = invoiceSession('sess_b', { retries: 2, amount: 7 });
    const ab = compareSessions(a, b).summary;
    const ba = compareSessions(b, a).summary;
    expect([ab.same, ab.changed, ab.onlyInA, ab.onlyInB]).toEqual([ba.same, ba.changed, ba.onlyInB, ba.onlyInA]);
  });

  it('falls back to anchored alignment when the sessions differ in more steps than maxEditLength', () => {
    const a = new SessionBuilder('a');
    const b = new SessionBuilder('b');
    for (let i = 0; i < 300; i++) {
      a.tool('t', { i });
      b.tool('t', { i });
      // Every other step differs, so the edit distance is about 300.
      if (i % 2 === 0) {
        a.tool('only_a', { i });
        b.tool('only_b', { i });
      }
    }
    const exact = compareSessions(a.events, b.events);
    expect(exact.alignment).toBe('myers');
    const fallback = compareSessions(a.events, b.events, { maxEditLength: 20 });
    expect(fallback.alignment).toBe('anchored');
    // The unique steps still line up exactly: every t(i) is matched, only_a/only_b are not.
    for (const c of [exact, fallback]) {
      expect(c.summary.same).toBe(300);
      expect(c.summary.onlyInA + c.summary.changed).toBe(150);
      expect(c.entries.filter((e) => e.op === 'same').every((e) => e.a!.label === 't')).toBe(true);
    }
    const disjoint = compareSessions(new SessionBuilder('x').tool('p', 1).tool('p', 1).events, new SessionBuilder('y').tool('q', 1).tool('q', 1).tool('q', 1).events, { maxEditLength: 1 });
    expect(disjoint.alignment).toBe('anchored');
    expect(disjoint.summary).toMatchObject({ same: 0, onlyInA: 2, onlyInB: 3 });
  });

  it('limits the number of field changes kept per step', () => {
    const input = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i]));
    const other = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i + 1]));
    const c = compareSessions(new SessionBuilder('a').tool('t', input).events, new SessionBuilder('b').tool('t', other).events, { maxFieldChanges: 5 });
    expect(c.entries[0]!.changes).toHaveLength(5);
    expect(c.entries[0]!.changesOmitted).toBe(25);
  });

  it('rejects bad options by name', () => {
    expect(() => compareSessions([], [], { types: ['tool_cal' as never] })).toThrow(/type has "tool_cal"/);
    expect(() => compareSessions([], [], { ignore: ['payload..x'] })).toThrow(/ignore has an invalid path/);
    expect(() => compareSessions([], [], { context: -1 })).toThrow(/context must be an integer >= 0/);
  });

  it('two empty selections are the same', () => {
    expect(compareSessions([], []).identical).toBe(true);
  });
});

describe('expected steps', () => {
  it('a snapshot of a session matches that session and another run of the same flow', () => {
    const a = invoiceSession('sess_a');
    const file = snapshotSession(a, { sessionId: 'sess_a', now: new Date(0) });
    expect(file.format).toBe('kdiff.expected.v1');
    expect(file.source_session).toBe('sess_a');
    expect(file.steps).toHaveLength(a.length);
    // Ids, clocks, latency, cost and LLM completions are not in the file; context is left out.
    const text = JSON.stringify(file);
    expect(text).not.toContain(a[1]!.event_id);
    expect(text).not.toContain('latency_ms');
    expect(text).not.toContain('Invoice drafted');
    expect(text).not.toContain('reasoning');
    const parsed = parseExpected(JSON.parse(text), 'steps.json');
    expect(compareExpected(parsed.steps, a).identical).toBe(true);
    expect(compareExpected(parsed.steps, invoiceSession('sess_c')).identical).toBe(true);
  });

  it('reports a changed amount, a missing step and an unexpected step against the file', () => {
    const file = snapshotSession(invoiceSession('sess_a'));
    const b = invoiceSession('sess_b', { amount: 45000, retries: 1 }).filter((e) => e.payload.tool !== 'slack.notify');
    const c = compareExpected(file.steps, b);
    expect(c.mode).toBe('expected');
    expect(c.identical).toBe(false);
    expect(c.summary).toMatchObject({ changed: 1, onlyInA: 1, onlyInB: 1 });
    const changed = c.entries.find((e) => e.op === 'changed')!;
    expect(changed.changes).toContainEqual({ path: 'payload.input.amount', kind: 'changed', a: 4500, b: 45000 });
    expect(c.entries.find((e) => e.op === 'removed')!.a!.label).toBe('slack.notify');
    expect(c.entries.find((e) => e.op === 'added')!.b!.status).toBe('error');
  });

  it('compares only the fields an expected step gives', () => {
    const b = invoiceSession('sess_b', { amount: 99 });
    const steps = [
      { event_type: 'session_start' },
      { event_type: 'tool_call', payload: { tool: 'crm.lookup' } },
      { event_type: 'llm_call' },
      { event_type: 'tool_call', agent_id: 'invoice-agent', payload: { tool: 'stripe.create_invoice', input: { customer_id: 'cus_1' } } },
      { event_type: 'decision', payload: { action: 'skip_email' } },
      { event_type: 'tool_call', payload: { tool: 'ledger.record' } },
      { event_type: 'tool_call', payload: { tool: 'slack.notify' } },
      { event_type: 'session_end', status: 'ok' },
    ];
    expect(compareExpected(steps, b).identical).toBe(true);
    steps[4] = { event_type: 'decision', payload: { action: 'send_email' } };
    const c = compareExpected(steps, b);
    expect(c.entries[4]!.op).toBe('changed');
    expect(c.entries[4]!.changes).toEqual([{ path: 'payload.action', kind: 'changed', a: 'send_email', b: 'skip_email' }]);
  });

  it('records ignore patterns and filters in the snapshot', () => {
    const file = snapshotSession(invoiceSession('sess_a'), { types: ['tool_call'], ignore: ['payload.output'] });
    expect(file.types).toEqual(['tool_call']);
    expect(file.ignore).toEqual(['payload.output']);
    expect(file.steps.every((s) => s.event_type === 'tool_call' && s.payload!.output === undefined)).toBe(true);
  });

  it('rejects malformed files with the problem named', () => {
    expect(() => parseExpected([], 'f.json')).toThrow(/f\.json: must hold a JSON object/);
    expect(() => parseExpected({ format: 'x', steps: [] }, 'f.json')).toThrow(/"format" must be "kdiff.expected.v1"/);
    expect(() => parseExpected({ format: 'kdiff.expected.v1' }, 'f.json')).toThrow(/"steps" must be a list/);
    expect(() => parseExpected({ format: 'kdiff.expected.v1', steps: [{ event_type: 'nope' }] }, 'f.json')).toThrow(/steps\[0\]\.event_type must be one of/);
    expect(() => parseExpected({ format: 'kdiff.expected.v1', steps: [{ event_type: 'tool_call', status: 'fine' }] }, 'f.json')).toThrow(/steps\[0\]\.status/);
    expect(() => parseExpected({ format: 'kdiff.expected.v1', steps: [{ event_type: 'tool_call', payload: 3 }] }, 'f.json')).toThrow(/steps\[0\]\.payload must be an object/);
    expect(() => parseExpected({ format: 'kdiff.expected.v1', steps: [], types: ['bad'] }, 'f.json')).toThrow(/"types" has "bad"/);
  });
});
