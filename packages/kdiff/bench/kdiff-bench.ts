/**
 * kdiff benchmark: two 10k-event sessions compared (target: <= 1 s).
 *   1. engine: compareSessions on in-memory sessions (typical: ~1% of steps changed plus inserted
 *      retry loops and removed steps; heavy: every 10th step changed; disjoint: nothing in common,
 *      which forces the anchored fallback);
 *   2. end to end: both sessions produced to a fresh topic of the local Kafka, then the built
 *      `kdiff compare --source kafka` binary spawned (process start, Kafka read, compare, output),
 *      and the same read + compare in-process through SessionReader.
 * Run: scripts/bench kdiff [--events 10000] [--runs 5]
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import { resolveSettings } from '@agenttrace/common';
import { SessionReader } from '@agenttrace/sessions';
import { compareSessions } from '../src/index.js';
import { createTopic, deleteTopic, produceRaw, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('events', 10_000);
const RUNS = arg('runs', 5);

/** Deterministic pseudo-random numbers, so every run compares the same sessions. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const TOOLS = ['crm.lookup', 'stripe.create_invoice', 'ledger.record', 'web.search', 'slack.notify', 'db.query'];

/** One step of the agent's loop, i-th of the session (about 400-700 bytes of JSON, like real tool/LLM events). */
function step(sessionId: string, i: number, t: number, variant: number): AgentEvent {
  const kind = i % 5;
  const base = { schema_version: 1 as const, event_id: newEventId(t), session_id: sessionId, agent_id: i % 17 === 0 ? 'research-agent' : 'invoice-agent', emitter_id: `em_${sessionId}`, seq: i, timestamp: new Date(t).toISOString(), status: 'ok' as const, context: {} as Record<string, unknown> };
  if (kind === 1) {
    return { ...base, event_type: 'llm_call', payload: { model: 'claude-sonnet-4-5', input: `Step ${i}: summarize the customer's account history and propose the next action. Context: invoice batch ${Math.floor(i / 50)}, attempt ${variant}.`, output: `Proposed action for step ${i}: continue with the invoice flow.`, input_tokens: 1200, output_tokens: 300, cost_usd: 0.0081, latency_ms: 800 + (i % 13) }, context: { reasoning: 'Need a summary before acting', model: 'claude-sonnet-4-5' } };
  }
  if (kind === 3) {
    return { ...base, event_type: 'decision', payload: { action: variant === 0 ? 'skip_email' : 'send_email', options: ['send_email', 'skip_email'] }, context: { reasoning: 'Customer disabled notifications', confidence: 0.89 } };
  }
  const tool = TOOLS[i % TOOLS.length]!;
  return { ...base, event_type: 'tool_call', payload: { tool, input: { customer_id: `cus_${i % 97}`, amount: 4500 + (i % 100) + variant, items: [{ sku: `sku_${i % 11}`, qty: 1 + (i % 3) }], note: 'milestone payment' }, output: { ok: true, id: `obj_${i}`, request_id: `req_${sessionId}_${i}` }, latency_ms: 100 + (i % 50) }, context: { reasoning: 'Milestone 2 completion', confidence: 0.94 } };
}

/** Session A, and B = A with `changeEvery`-th steps changed, a retry loop every 500 steps and a removed step every 700. */
function sessions(changeEvery: number): { a: AgentEvent[]; b: AgentEvent[] } {
  const r = rng(42);
  const t0 = Date.parse('2026-01-15T14:00:00Z');
  const a: AgentEvent[] = [];
  const b: AgentEvent[] = [];
  for (let i = 0; a.length < N; i++) a.push(step('sess_bench_a', i, t0 + i * 100, 0));
  for (let i = 0; b.length < N; i++) {
    if (i % 700 === 699) continue;
    if (i % 500 === 250) {
      for (let k = 0; k < 2; k++) b.push({ ...step('sess_bench_b', i, t0 + i * 100, 0), status: 'error', seq: b.length });
    }
    const changed = changeEvery > 0 && Math.floor(r() * changeEvery) === 0;
    b.push({ ...step('sess_bench_b', i, t0 + i * 100 + 7, changed ? 1 : 0), seq: b.length });
  }
  return { a, b };
}

function disjoint(): { a: AgentEvent[]; b: AgentEvent[] } {
  const t0 = Date.parse('2026-01-15T14:00:00Z');
  const a = Array.from({ length: N }, (_, i) => step('sess_bench_a', i, t0 + i, 0));
  const b = Array.from({ length: N }, (_, i) => step('sess_bench_b', i + N * 3, t0 + i, 5));
  return { a, b };
}

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number): string => `${ms.toFixed(0)} ms`;

function timeEngine(name: string, s: { a: AgentEvent[]; b: AgentEvent[] }): void {
  compareSessions(s.a, s.b); // warm-up (JIT)
  const times: number[] = [];
  let last: ReturnType<typeof compareSessions> | undefined;
  for (let k = 0; k < RUNS; k++) {
    const t = performance.now();
    last = compareSessions(s.a, s.b, { ignore: ['payload.output.request_id'] });
    times.push(performance.now() - t);
  }
  const sm = last!.summary;
  console.log(
    `engine ${name.padEnd(9)} A ${s.a.length} / B ${s.b.length} events: median ${fmt(median(times))} (min ${fmt(Math.min(...times))}, max ${fmt(Math.max(...times))}); ` +
      `${sm.same} same, ${sm.changed} changed, ${sm.onlyInA} only in A, ${sm.onlyInB} only in B; alignment ${last!.alignment}`,
  );
}

async function endToEnd(): Promise<void> {
  const topic = uniqueName('kdiff-bench');
  const { a, b } = sessions(100);
  // 20 partitions, as the tracer creates the topic.
  await createTopic(topic, 20);
  try {
    const t = performance.now();
    await produceRaw(topic, [...a, ...b].map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
    console.log(`produced ${a.length + b.length} events to ${topic} in ${fmt(performance.now() - t)}`);
    const cli = join(repoRoot, 'packages', 'kdiff', 'dist', 'cli.js');
    const args = ['compare', 'sess_bench_a', 'sess_bench_b', '--source', 'kafka', '--topic', topic, '--brokers', stack.brokers.join(','), '--ignore', 'payload.output.request_id'];
    for (const mode of [['--json'], ['--show-divergence'], []]) {
      const times: number[] = [];
      let status: number | null = null;
      let bytes = 0;
      for (let k = 0; k < RUNS; k++) {
        const t1 = performance.now();
        const r = spawnSync(process.execPath, [cli, ...args, ...mode], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } });
        times.push(performance.now() - t1);
        status = r.status;
        bytes = r.stdout.length;
        if (r.status !== 1) throw new Error(`kdiff exited ${r.status}: ${r.stderr}`);
        // The whole document must arrive through the pipe, not the first 64 KiB.
        if (mode[0] === '--json' && (JSON.parse(r.stdout) as { entries: unknown[] }).entries.length < N) throw new Error('kdiff --json output is incomplete');
      }
      console.log(`end-to-end CLI ${(mode[0] ?? '(full text view)').padEnd(18)}: median ${fmt(median(times))} (min ${fmt(Math.min(...times))}, max ${fmt(Math.max(...times))}), exit ${status}, ${bytes} bytes of output`);
    }
    const times: number[] = [];
    const reads: number[] = [];
    for (let k = 0; k < RUNS; k++) {
      const reader = new SessionReader(resolveSettings({ topic, brokers: stack.brokers.join(',') }));
      try {
        const t2 = performance.now();
        const [ra, rb] = await Promise.all([reader.read('sess_bench_a', { source: 'kafka' }), reader.read('sess_bench_b', { source: 'kafka' })]);
        const t3 = performance.now();
        compareSessions(ra.events, rb.events, { ignore: ['payload.output.request_id'] });
        times.push(performance.now() - t2);
        reads.push(t3 - t2);
      } finally {
        await reader.close();
      }
    }
    console.log(`in-process read (Kafka) + compare: median ${fmt(median(times))}, of which reading both sessions ${fmt(median(reads))}`);
    spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    const t4 = performance.now();
    spawnSync(process.execPath, [cli, '--version'], { encoding: 'utf8' });
    console.log(`process start of the CLI alone (kdiff --version): ${fmt(performance.now() - t4)}`);
  } finally {
    await deleteTopic(topic);
  }
}

console.log(`kdiff benchmark: ${N} events per session, ${RUNS} runs each, node ${process.version}`);
timeEngine('typical', sessions(100));
timeEngine('heavy', sessions(10));
timeEngine('disjoint', disjoint());
await endToEnd();
process.exit(0);
