import { describe, expect, it } from 'vitest';
import type { AgentEvent } from '@agenttrace/contract';
import { compareSessions, comparisonJson, makeChalk, renderComparison, stepsFromEvents, structuralFacts, type RenderOptions } from '../src/index.js';
import { SessionBuilder, invoiceSession } from './fixtures.js';

const opts = (over: Partial<RenderOptions> = {}): RenderOptions => ({ chalk: makeChalk(false), labelA: 'incident', labelB: 'normal', view: 'unified', width: 160, valueWidth: 60, ...over });

/**
 * The demo's two kinds of session (examples/invoice-agent/agent.ts), with their per-run data:
 * a normal run (research sub-agent, terms decision, writing sub-agent, invoice, skip e-mail) and
 * the incident (plan, charge decision, a payment retried without backoff, give up).
 */
function demoNormal(id: string, customer: string): AgentEvent[] {
  const s = new SessionBuilder(id).start();
  s.tool('crm.get_customer', { customer_id: customer }, { id: customer, name: 'Globex', notifications: false });
  s.add('tool_call', { tool: 'billing.search_history', input: { customer_id: customer, months: 12 }, output: { invoices: 4, late_payments: 0 }, latency_ms: 9 }, { agent_id: 'research-agent' });
  s.add('llm_call', { model: 'claude-sonnet-4-5', input: 'Summarize the payment behaviour of Globex', output: { text: 'pays on time' }, cost_usd: 0.004, latency_ms: 12 }, { agent_id: 'research-agent' });
  s.add('delegation', { subagent_id: 'research-agent', task: { topic: 'billing history of Globex' }, output: { late: 0 }, latency_ms: 30 });
  s.decision('standard_terms', 'History shows 0 late payment(s) or a small amount', 0.73, ['apply_loyalty_discount', 'standard_terms']);
  s.add('llm_call', { model: 'claude-sonnet-4-5', input: 'Write an invoice email for Globex, total 4410 USD', output: { subject: 'Invoice' }, cost_usd: 0.01, latency_ms: 20 }, { agent_id: 'writing-agent' });
  s.add('delegation', { subagent_id: 'writing-agent', task: { task: 'draft the invoice email', customer: 'Globex' }, output: { subject: 'Invoice' }, latency_ms: 25 });
  s.tool('stripe.create_invoice', { customer_id: customer, amount: 4410, currency: 'usd' }, { invoice_id: 'in_9x', status: 'open' });
  s.decision('skip_email', 'Customer disabled notifications', 0.89, ['send_email', 'skip_email']);
  s.add('custom', { name: 'invoice_ready', invoice_id: 'in_9x', total: 4410 });
  return s.end('ok').events;
}

function demoIncident(id: string, retries: number): AgentEvent[] {
  const s = new SessionBuilder(id).start();
  s.tool('crm.get_customer', { customer_id: 'cus_incident42' }, { id: 'cus_incident42', name: 'Acme Corp', notifications: true });
  s.llm('claude-sonnet-4-5', 'Plan how to collect the overdue balance of 48,200 USD for Acme Corp', { plan: ['create invoice'] }, 0.009, 12);
  s.decision('charge_card_on_file', 'Customer has a valid card on file and an overdue balance', 0.91, ['charge_card_on_file', 'send_payment_link']);
  for (let i = 0; i < retries; i++) s.failedTool('stripe.create_payment', { customer_id: 'cus_incident42', amount: 48_200, attempt: i + 1 }, 'Too many requests (429)');
  s.add('error', { error: { name: 'RetryBudgetExhausted', message: `stripe.create_payment failed ${retries} times in a row; giving up` } }, { status: 'error' });
  s.add('session_end', { status: 'error', reason: 'payment retries exhausted' }, { status: 'error' });
  return s.events;
}

/** A routing agent: look the invoice up, route it; the incident escalates and loops on the lookup. */
function routing(id: string, o: { route: string; lookups: number; invoice: string; amount: number }): AgentEvent[] {
  const s = new SessionBuilder(id).start();
  s.tool('fetch_ticket', { ticket: `T-${o.invoice}` }, { invoice: o.invoice, amount: o.amount });
  s.add('decision', { name: 'route', action: o.route, options: ['approve', 'escalate'] }, { context: { reasoning: `amount ${o.amount}`, confidence: 0.8 } });
  for (let i = 0; i < o.lookups - 1; i++) s.failedTool('lookup_invoice', { invoice: o.invoice }, `invoice ${o.invoice} locked`);
  s.tool('lookup_invoice', { invoice: o.invoice }, { found: true });
  s.tool('ledger.record', { invoice: o.invoice, amount: o.amount });
  return s.end('ok').events;
}

describe('structural differences', () => {
  const steps = (events: AgentEvent[]) => stepsFromEvents(events, []);

  it('tells status, error kind, decision, model, sub-agent and outcome apart from per-run data', () => {
    const a = new SessionBuilder('a')
      .tool('pay', { amount: 1 })
      .failedTool('pay', { amount: 1 }, 'declined')
      .decision('approve', 'fine', 0.9, ['approve', 'escalate'])
      .llm('model-a', 'p', 'o')
      .end('ok').events;
    const b = new SessionBuilder('b')
      .failedTool('pay', { amount: 2 }, 'declined')
      .failedTool('pay', { amount: 1 }, 'a different message')
      .decision('escalate', 'not fine', 0.2, ['approve', 'escalate', 'hold'])
      .llm('model-b', 'p', 'o')
      .end('error').events;
    const [sa, sb] = [steps(a), steps(b)];
    const fields = (i: number) => structuralFacts(sa[i]!, sb[i]!).map((f) => `${f.field} ${f.path}`);
    expect(fields(0)).toEqual(['status status']);
    // Same status and error kind: a different message or input is data.
    expect(fields(1)).toEqual([]);
    // Both failed, with another kind of error: structural.
    const timeout = new SessionBuilder('c');
    timeout.add('tool_call', { tool: 'pay', input: { amount: 1 }, error: { name: 'Timeout', message: 'declined' } }, { status: 'error' });
    expect(structuralFacts(sa[1]!, steps(timeout.events)[0]!).map((f) => `${f.field} ${f.path} ${String(f.a)} ${String(f.b)}`)).toEqual(['error payload.error.name ToolError Timeout']);
    expect(fields(2)).toEqual(['decision payload.action']);
    expect(fields(3)).toEqual(['model payload.model']);
    expect(fields(4)).toEqual(['status status', 'outcome payload.status']);
    // An ignored field is never structural.
    const ignored = compareSessions(a, b, { ignore: ['payload.action'] });
    expect(ignored.entries[2]!.structural).toBe(false);
  });

  it('a data-only difference is still reported, as a divergence that is not structural', () => {
    const c = compareSessions(invoiceSession('a'), invoiceSession('b', { amount: 45000 }));
    expect(c.story).toEqual([]);
    expect(c.divergence).toMatchObject({ entry: 3, structural: false, story: undefined });
    expect(c.summary).toMatchObject({ structural: 0, dataOnly: 1 });
    const out = renderComparison(c, opts(), true);
    expect(out).toContain('(no structural difference: the sessions differ only in per-run data)');
    expect(renderComparison(c, opts(), false)).toContain('What changed: no structural difference');
  });
});

describe('the story of the demo incident against a normal session', () => {
  const incident = demoIncident('sess_incident', 240);
  const normal = demoNormal('sess_normal', 'cus_o4a');
  const c = compareSessions(incident, normal);

  it('skips the customer_id change and names the decision and the loop', () => {
    // The first difference in the alignment is per-run data: the customer looked up.
    const firstAny = c.entries.findIndex((e) => e.op !== 'same');
    expect(c.entries[firstAny]!.changes.map((ch) => ch.path)).toContain('payload.input.customer_id');
    expect(c.entries[firstAny]!.structural).toBe(false);
    // The divergence is the first structural one, after it.
    const d = c.divergence!;
    expect(d.structural).toBe(true);
    expect(d.entry).toBeGreaterThan(firstAny);
    expect(d.context.map((e) => e.op)).toEqual(['same', 'changed']);
    const texts = c.story.map((item) => item.kind);
    expect(texts[0]).toBe('only_in_a');
    const lines = comparisonJson(c, { kind: 'session', name: 'i', warnings: [] }, { kind: 'session', name: 'n', warnings: [] }).story as Array<{ text: string; kind: string }>;
    const decision = lines.findIndex((l) => l.text === 'decision: charge_card_on_file vs standard_terms');
    const loop = lines.findIndex((l) => l.text === 'tool stripe.create_payment called 240 times in a row in A (240 failed); 0 times in B');
    expect(decision).toBeGreaterThan(0);
    expect(loop).toBe(decision + 1);
    expect(lines.at(-1)!.text).toBe('outcome: error vs ok');
    // The loop is one item, not 240.
    expect(lines.filter((l) => l.text.includes('stripe.create_payment'))).toHaveLength(1);
    expect(lines.some((l) => l.text.includes('cus_'))).toBe(false);
  });

  it('prints the story after the divergence, then the data differences, and folds the loop in the full view', () => {
    const div = renderComparison(c, opts(), true);
    const story = div.indexOf('What changed (');
    const data = div.indexOf('Data differences (per-run values, not structural)');
    expect(div.indexOf('First divergence at A#3')).toBe(div.indexOf('First divergence'));
    expect(story).toBeGreaterThan(div.indexOf('First divergence'));
    expect(data).toBeGreaterThan(story);
    expect(div.slice(story, data)).toContain('decision: charge_card_on_file vs standard_terms');
    expect(div.slice(story, data)).toContain('A#5–A#244');
    expect(div.slice(data)).toContain('payload.input.customer_id: "cus_incident42" → "cus_o4a"');
    const full = renderComparison(c, opts(), false);
    // The loop's first and last call, and the summary's first error: not 240 lines.
    expect(full.match(/tool_call stripe\.create_payment \[/g)).toHaveLength(3 + 1);
    expect(full).toContain('… 238 more tool_call stripe.create_payment [invoice-agent] ERROR (A#6–A#243) …');
    const side = renderComparison(c, opts({ view: 'side-by-side' }), false);
    expect(side).toContain('… 238 more tool_call stripe.create_payment');
  });
});

describe('a named decision and a loop whose last call succeeded', () => {
  const incident = routing('sess_inc', { route: 'escalate', lookups: 847, invoice: 'INV-1', amount: 90 });
  const normal = routing('sess_ok', { route: 'approve', lookups: 1, invoice: 'INV-2', amount: 40 });

  it('names the decision, then the loop with its count and failures, across the aligned last call', () => {
    const c = compareSessions(incident, normal);
    const doc = comparisonJson(c, { kind: 'session', name: 'i', warnings: [] }, { kind: 'session', name: 'n', warnings: [] }) as Record<string, any>;
    expect(doc.story.map((s: { text: string }) => s.text)).toEqual(['decision route: escalate vs approve', 'tool lookup_invoice called 847 times in a row in A (846 failed); 1 time in B']);
    expect(doc.divergence).toMatchObject({ structural: true, text: 'decision route: escalate vs approve', facts: [{ field: 'decision', path: 'payload.action', a: 'escalate', b: 'approve' }] });
    expect(doc.story[1]).toMatchObject({ kind: 'loop', a: { from: 3, to: 849 }, b: { from: 3, to: 3 }, loop: { side: 'a', label: 'lookup_invoice', calls: 847, failed: 846, other_calls: 1 } });
    expect(doc.summary).toMatchObject({ structural: 2 });
    // Entries say which differences are structural; matching entries carry no flag.
    expect(doc.entries.filter((e: { op: string }) => e.op === 'same').every((e: object) => !('structural' in e))).toBe(true);
    expect(doc.entries.filter((e: { op: string }) => e.op === 'removed').every((e: { structural: boolean }) => e.structural)).toBe(true);
    expect(doc.entries[1]).toMatchObject({ op: 'changed', structural: false });
    // Reversed, the loop is on B's side.
    const back = compareSessions(normal, incident);
    const text = renderComparison(back, opts(), true);
    expect(text).toContain('tool lookup_invoice called 847 times in a row in B (846 failed); 1 time in A');
    expect(text).toContain('decision route: approve vs escalate');
  });

  it('prints long values and reasoning whole with --full, cut without', () => {
    const long = 'x'.repeat(900);
    const a = new SessionBuilder('a').decision('approve', `because ${long}`).events;
    const b = new SessionBuilder('b').decision('escalate', `since ${long}`).events;
    const c = compareSessions(a, b);
    const cut = renderComparison(c, opts(), true);
    expect(cut).toContain('--full prints all');
    expect(cut).not.toContain(long);
    const whole = renderComparison(c, opts({ full: true, valueWidth: Number.POSITIVE_INFINITY }), true);
    expect(whole).not.toContain('--full prints all');
    expect(whole).toContain(`reasoning: because ${long}`);
    expect(whole).toContain(`context.reasoning: "because ${long}" → "since ${long}"`);
  });
});
