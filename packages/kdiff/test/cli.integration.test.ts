/**
 * kdiff end to end: sessions emitted through the tracer into the real Kafka, read back by the
 * built binary through SessionReader (Kafka source), compared, exit status checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentTracer } from '@agenttrace/tracer';
import { createTopic, deleteTopic, makeEvent, produceRaw, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';

// The committed entry point, what `npx kdiff` runs.
const CLI = join(repoRoot, 'packages', 'kdiff', 'bin', 'kdiff.js');
const HOSTILE = 'pwned\u001b[2J\u001b]0;evil-title\u0007 \u202Egnp.exe\u009b31m';
const topic = uniqueName('kdiff-cli');
const run = uniqueName('s');
const sid = (name: string): string => `sess_kdiff_${run}_${name}`;
const tmp = mkdtempSync(join(tmpdir(), 'kdiff-test-'));
const tracerErrors: unknown[] = [];
// A unique empty Redis prefix: `auto` finds nothing there and goes on to Kafka.
const conn = ['--topic', topic, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--redis-prefix', `${uniqueName('kdiff')}:`, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];

interface Flow {
  amount?: number;
  decision?: string;
  reasoning?: string;
  retries?: number;
  query?: string;
  extraFetch?: boolean;
  hostile?: boolean;
}

/** The invoice agent, traced: CRM lookup, LLM draft, research sub-agent, Stripe (with retries), decision, ledger. */
async function emit(sessionId: string, flow: Flow = {}): Promise<void> {
  const tracer = new AgentTracer({
    sessionId,
    agentId: 'invoice-agent',
    kafka: { brokers: stack.brokers },
    topic,
    handleExit: false,
    onError: (err) => tracerErrors.push(err),
  });
  await tracer.trackToolCall('crm.lookup', { customer_id: 'cus_1' }, async () => ({ name: flow.hostile ? HOSTILE : 'ACME', request_id: `req_${sessionId}` }));
  await tracer.trackLlmCall({ model: 'claude-sonnet-4-5', input: 'Draft the invoice for ACME' }, async () => 'Invoice drafted', {
    usage: () => ({ inputTokens: 1200, outputTokens: 300, costUsd: 0.0081 }),
    reasoning: 'Need a draft first',
  });
  await tracer.delegate('research-agent', { topic: 'pricing' }, async () => {
    await tracer.trackToolCall('web.search', { q: flow.query ?? 'acme pricing' }, async () => ({ hits: 3 }));
    if (flow.extraFetch) await tracer.trackToolCall('web.fetch', { url: 'https://example.com/pricing' }, async () => ({ status: 200 }));
    return { summary: 'standard pricing' };
  });
  for (let i = 0; i < (flow.retries ?? 0); i++) {
    await tracer
      .trackToolCall('stripe.create_invoice', { customer_id: 'cus_1', amount: flow.amount ?? 4500 }, async () => {
        throw new Error('rate limited');
      })
      .catch(() => undefined);
  }
  await tracer.trackToolCall('stripe.create_invoice', { customer_id: 'cus_1', amount: flow.amount ?? 4500 }, async () => ({ invoice_id: 'inv_1' }), {
    reasoning: 'Milestone 2 completion',
    confidence: 0.94,
  });
  tracer.logDecision({ action: flow.decision ?? 'skip_email', reasoning: flow.reasoning ?? 'Customer disabled notifications', confidence: 0.89, options: ['send_email', 'skip_email'] });
  await tracer.trackToolCall('ledger.record', { invoice: 'inv_1' }, async () => ({ ok: true }));
  if (flow.hostile) tracer.logEvent(`cache_miss${HOSTILE}`, { key: HOSTILE });
  tracer.endSession({ status: 'ok' });
  await tracer.close();
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kdiff(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every run's CRM lookup returns its own request id: the field teams ignore with --ignore. */
const IGNORE_REQUEST_ID = ['--ignore', 'payload.output.request_id'];
const compare = (a: string, b: string, ...rest: string[]): Promise<CliResult> => kdiff(['compare', sid(a), sid(b), '--source', 'kafka', ...conn, ...IGNORE_REQUEST_ID, ...rest]);

beforeAll(async () => {
  await createTopic(topic, 4);
  await Promise.all([
    emit(sid('base')),
    emit(sid('twin')),
    emit(sid('amount'), { amount: 45000 }),
    emit(sid('retry'), { retries: 2 }),
    emit(sid('decision'), { decision: 'send_email', reasoning: 'Customer asked for a copy' }),
    emit(sid('subagent'), { query: 'acme rivals', extraFetch: true }),
    emit(sid('hostile'), { hostile: true }),
  ]);
  expect(tracerErrors).toEqual([]);
});

afterAll(async () => {
  await deleteTopic(topic);
  rmSync(tmp, { recursive: true, force: true });
});

describe('kdiff compare (built binary, sessions from the tracer via Kafka)', () => {
  it('exits 0 for two runs of the same flow', async () => {
    const r = await compare('base', 'twin');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`A: ${sid('base')} (kafka)`);
    expect(r.stdout).toMatch(/all 9 compared steps match/);
    expect(r.stdout).toContain('Same: no differences');
    // Without --ignore the per-run request id is the one difference, shown with its path.
    const plain = await kdiff(['compare', sid('base'), sid('twin'), '--source', 'kafka', ...conn]);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toContain(`payload.output.request_id: "req_${sid('base')}" → "req_${sid('twin')}"`);
    expect(plain.stdout).toMatch(/8 same, 1 changed, 0 only in A, 0 only in B/);
    // Without the default ignores, ids and timestamps differ too.
    const all = JSON.parse((await compare('base', 'twin', '--no-default-ignore', '--json')).stdout);
    expect(all.identical).toBe(false);
    expect(all.entries[0].changes.map((c: { path: string }) => c.path)).toEqual(expect.arrayContaining(['event_id', 'session_id', 'timestamp']));
  });

  it('exits 1 for one changed tool input and names the path', async () => {
    const r = await compare('base', 'amount', '--show-divergence');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('payload.input.amount: 4500 → 45000');
    expect(r.stdout).toMatch(/First divergence at A#6 \/ B#6/);
    expect(r.stdout).toContain('reasoning: Milestone 2 completion');
    expect(r.stdout).toContain('confidence 0.94');
    expect(r.stdout).toContain('model claude-sonnet-4-5');
    expect(r.stdout).toMatch(/before it \(3 matching steps\)/);
    expect(r.stdout).toContain('Different.');
    const j = JSON.parse((await compare('base', 'amount', '--json')).stdout);
    expect(j.format).toBe('kdiff.compare.v1');
    expect(j.identical).toBe(false);
    expect(j.summary).toMatchObject({ same: 8, changed: 1, only_in_a: 0, only_in_b: 0 });
    expect(j.divergence.changes).toEqual([{ path: 'payload.input.amount', kind: 'changed', a: 4500, b: 45000 }]);
    // Ignoring the field makes them the same.
    expect((await compare('base', 'amount', '--ignore', 'payload.input.amount')).code).toBe(0);
  });

  it('keeps the alignment after an inserted retry loop', async () => {
    const r = await compare('base', 'retry', '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.summary).toMatchObject({ same: 9, changed: 0, only_in_a: 0, only_in_b: 2, error_only_in: 'b' });
    const added = j.entries.filter((e: { op: string }) => e.op === 'added');
    expect(added.map((e: { b: { label: string; status: string } }) => `${e.b.label}:${e.b.status}`)).toEqual(['stripe.create_invoice:error', 'stripe.create_invoice:error']);
    // Everything after the loop is matched, two steps further on in B.
    const last = j.entries.at(-1);
    expect(last.op).toBe('same');
    expect(last.b.index).toBe(last.a.index + 2);
    const text = await compare('base', 'retry');
    expect(text.stdout).toMatch(/\+ {8}B#6 {4}tool_call stripe\.create_invoice \[invoice-agent\] ERROR/);
    expect(text.stdout).toMatch(/error only in B/);
  });

  it('shows a different decision with both sides\' reasoning', async () => {
    const r = await compare('base', 'decision', '--show-divergence');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('payload.action: "skip_email" → "send_email"');
    expect(r.stdout).toContain('reasoning: Customer disabled notifications');
    expect(r.stdout).toContain('reasoning: Customer asked for a copy');
    expect(r.stdout).toContain('confidence 0.89');
  });

  it('reports sub-agent differences, and filters by agent and type', async () => {
    const r = await compare('base', 'subagent', '--json');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    const changed = j.entries.filter((e: { op: string }) => e.op !== 'same');
    expect(changed.map((e: { op: string; a: { label: string } | null; b: { label: string; agent_id: string; depth?: number } | null }) => `${e.op}:${(e.b ?? e.a)!.label}@${(e.b ?? e.a as never as { agent_id: string }).agent_id}`)).toEqual([
      'changed:web.search@research-agent',
      'added:web.fetch@research-agent',
    ]);
    expect(changed[0].changes).toEqual([{ path: 'payload.input.q', kind: 'changed', a: 'acme pricing', b: 'acme rivals' }]);
    expect(changed[0].b.depth).toBe(1);
    // The main agent's own steps are the same (the delegation returned the same result).
    expect((await compare('base', 'subagent', '--agent', 'invoice-agent')).code).toBe(0);
    expect((await compare('base', 'subagent', '--agent', 'research-agent')).code).toBe(1);
    expect((await compare('base', 'subagent', '--type', 'decision,llm_call')).code).toBe(0);
    const side = await compare('base', 'subagent', '--view', 'side-by-side');
    expect(side.code).toBe(1);
    expect(side.stdout).toMatch(/A#4 +↳ tool_call web\.search \[research-agent\] +~ B#4 +↳ tool_call web\.search/);
    expect(side.stdout).toMatch(/\+ B#5 +↳ tool_call web\.fetch \[research-agent\]/);
  });

  it('neutralizes control characters from agent content', async () => {
    const r = await compare('base', 'hostile');
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('\u001b');
    expect(r.stdout).not.toContain('\u202e');
    expect(r.stdout).not.toContain('\u009b');
    // Labels are neutralized by sanitizeForTerminal; values are JSON text, escaped either way.
    expect(r.stdout).toContain('custom cache_misspwned\\e[2J\\e]0;evil-title\\x07 \\u{202e}gnp.exe\\x9b31m');
    expect(r.stdout).toContain('pwned\\u001b[2J');
    const side = await compare('base', 'hostile', '--view', 'side-by-side', '--show-divergence');
    expect(side.stdout).not.toContain('\u001b');
  });

  it('colors only when asked on a non-terminal, and never with --no-color', async () => {
    expect((await compare('base', 'amount')).stdout).not.toContain('\u001b[');
    expect((await compare('base', 'amount', '--color')).stdout).toContain('\u001b[');
    expect((await compare('base', 'amount', '--color', '--no-color')).stdout).not.toContain('\u001b[');
  });

  it('checks a session against an expected-steps file written by kdiff snapshot', async () => {
    const file = join(tmp, 'expected.json');
    const snap = await kdiff(['snapshot', sid('base'), '--out', file, '--source', 'kafka', ...conn, '--ignore', 'payload.output.request_id']);
    expect(snap.stderr).toContain('wrote 9 expected steps');
    expect(snap.code).toBe(0);
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    expect(doc.format).toBe('kdiff.expected.v1');
    expect(doc.ignore).toEqual(['payload.output.request_id']);
    const ok = await kdiff(['compare', sid('twin'), '--expected', file, '--source', 'kafka', ...conn]);
    expect(ok.stdout).toContain('Same:');
    expect(ok.code).toBe(0);
    const bad = await kdiff(['compare', sid('amount'), '--expected', file, '--source', 'kafka', ...conn, '--show-divergence']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('payload.input.amount: 4500 → 45000');
    // A hand-trimmed file pins only what matters.
    doc.steps = doc.steps.map((s: { event_type: string; payload?: { tool?: string } }) => (s.event_type === 'tool_call' ? { event_type: 'tool_call', payload: { tool: s.payload!.tool } } : { event_type: s.event_type }));
    writeFileSync(file, JSON.stringify(doc));
    expect((await kdiff(['compare', sid('amount'), '--expected', file, '--source', 'kafka', ...conn])).code).toBe(0);
    expect((await kdiff(['compare', sid('retry'), '--expected', file, '--source', 'kafka', ...conn])).code).toBe(1);
  });
});

describe('kdiff with longer sessions', () => {
  it('delivers a --json document larger than a pipe buffer completely', async () => {
    const [a, b] = [sid('long_a'), sid('long_b')];
    const n = 600;
    const make = (session: string, i: number) =>
      makeEvent({ session_id: session, emitter_id: `em_${session}`, seq: i, payload: { tool: `tool.${i % 7}`, input: { i, amount: session === b && i === 300 ? 2 : 1 }, output: { ok: true }, latency_ms: 5 } });
    await produceRaw(topic, [...Array.from({ length: n }, (_, i) => make(a, i)), ...Array.from({ length: n }, (_, i) => make(b, i))].map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    const r = await kdiff(['compare', a, b, '--source', 'kafka', ...conn, '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout.length).toBeGreaterThan(128 * 1024);
    const j = JSON.parse(r.stdout);
    expect(j.entries).toHaveLength(n);
    expect(j.summary).toMatchObject({ same: n - 1, changed: 1 });
    expect(j.divergence.a.index).toBe(300);
  });
});

describe('kdiff trouble (exit 2)', () => {
  const noStack = (r: CliResult): void => {
    expect(r.stderr).not.toMatch(/\n\s+at /);
  };

  it('an unknown session', async () => {
    const r = await kdiff(['compare', sid('base'), sid('nope'), '--source', 'kafka', ...conn]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`kdiff: session "${sid('nope')}" was not found`);
    expect(r.stderr).toContain('hint:');
    noStack(r);
    // auto: Redis (empty prefix) then Kafka then the archive.
    const auto = await kdiff(['compare', sid('nope'), sid('base'), ...conn]);
    expect(auto.code).toBe(2);
    expect(auto.stderr).toContain(`session "${sid('nope')}" was not found`);
  });

  it('an unreachable source', async () => {
    const r = await kdiff(['compare', 'sess_x', 'sess_y', '--source', 'kafka', '--topic', topic, '--brokers', '127.0.0.1:1', '--timeout', '1500']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/kdiff: kafka source unavailable/);
    noStack(r);
  });

  it('bad arguments', async () => {
    for (const args of [
      ['compare', sid('base')],
      ['compare', sid('base'), sid('twin'), '--view', 'diagonal'],
      ['compare', sid('base'), sid('twin'), '--type', 'tool_cal'],
      ['compare', sid('base'), sid('twin'), '--context', 'many'],
      ['compare', sid('base'), sid('twin'), '--ignore', 'payload..x'],
      ['compare', sid('base'), sid('twin'), '--expected', join(tmp, 'missing.json')],
      ['compare', sid('base'), '--expected', join(tmp, 'missing.json')],
      ['compare', sid('base'), sid('twin'), '--config', join(tmp, 'missing-config.json')],
      ['frobnicate'],
      [],
    ]) {
      const r = await kdiff([...args, '--topic', topic]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.length, args.join(' ')).toBeGreaterThan(0);
      noStack(r);
    }
    const missing = await kdiff(['compare', sid('base'), '--expected', join(tmp, 'missing.json'), '--topic', topic]);
    expect(missing.stderr).toContain('missing.json: no such file');
    writeFileSync(join(tmp, 'bad.json'), JSON.stringify({ format: 'kdiff.expected.v1', steps: [{ event_type: 'nope' }] }));
    const bad = await kdiff(['compare', sid('base'), '--expected', join(tmp, 'bad.json'), '--topic', topic]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('steps[0].event_type must be one of');
  });

  it('help documents the exit status and examples', async () => {
    const r = await kdiff(['compare', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Exit status (like diff)');
    expect(r.stdout).toContain('kdiff compare sess_a1b2c3 sess_b4c5d6 --show-divergence');
    const s = await kdiff(['snapshot', '--help']);
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('kdiff snapshot sess_a1b2c3 --out expected-steps.json');
  });
});
