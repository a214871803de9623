/// <reference lib="dom" />
/**
 * The web view's figures (docs/benchmarks.md):
 *   1. sessions API latency with 10k sessions in Redis (materialized by the real dashboard consumer);
 *   2. time to interactive of a 10k-event session page in Debian's chromium;
 *   3. one server feeding 100 open live pages (Server-Sent Events): delivery latency of updates.
 *
 *   scripts/bench web [--sessions 10000] [--events 10000] [--clients 100] [--rounds 20]
 */
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';
import { newEventId, type AgentEvent } from '@agenttrace/contract';
import { WebServer } from '../src/index.js';
import { eventually, makeEvent, produceRaw, stack } from '../../../test-support/stack.js';
import { launchBrowser } from '../test/browser.js';
import { Pipeline } from '../test/fixtures.js';

const { values } = parseArgs({ options: { sessions: { type: 'string', default: '10000' }, events: { type: 'string', default: '10000' }, clients: { type: 'string', default: '100' }, rounds: { type: 'string', default: '20' } } });
const SESSIONS = Number(values.sessions);
const EVENTS = Number(values.events);
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);

const pct = (xs: number[], p: number) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p95 ${pct(xs, 95).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;
const record = (e: AgentEvent) => ({ key: e.session_id, value: JSON.stringify(e) });

const pipeline = new Pipeline();
await pipeline.start();
const redis = new Redis(stack.redisUrl);
const keys = redisKeys(pipeline.prefix);
let server: WebServer | undefined;
try {
  // 1. 10k sessions: session_start, a few tool calls, an end; some fail, costs vary.
  const t0 = Date.now() - 3_600_000;
  const batch: ReturnType<typeof record>[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const sid = `sess_bench_${i}`;
    const at = (k: number) => new Date(t0 + i * 300 + k).toISOString();
    const tools = 1 + (i % 7);
    let seq = 0;
    batch.push(record(makeEvent({ session_id: sid, emitter_id: 'em', seq: seq++, event_type: 'session_start', timestamp: at(0), payload: {} })));
    for (let k = 0; k < tools; k++) batch.push(record(makeEvent({ session_id: sid, emitter_id: 'em', seq: seq++, timestamp: at(1 + k), payload: { tool: 'crm.lookup', input: { k }, output: { ok: true }, latency_ms: 5, cost_usd: (i % 13) / 1000 } })));
    batch.push(record(makeEvent({ session_id: sid, emitter_id: 'em', seq: seq++, event_type: 'session_end', status: i % 10 === 0 ? 'error' : 'ok', timestamp: at(20), payload: {} })));
  }
  const produced = Date.now();
  await produceRaw(pipeline.topic, batch);
  await eventually('10k sessions materialized', async () => (await redis.zcard(keys.byActivity())) >= SESSIONS, 300_000, 500);
  process.stdout.write(`${SESSIONS} sessions (${batch.length} events) materialized in ${((Date.now() - produced) / 1000).toFixed(1)} s\n`);

  // 2. one 10k-event session: LLM calls, tool calls, a retry loop, a sub-agent.
  const big = 'sess_bench_big';
  const deleg = newEventId();
  const events: AgentEvent[] = [];
  const bt0 = Date.now() - 600_000;
  for (let s = 0; s < EVENTS; s++) {
    const at = new Date(bt0 + s * 20).toISOString();
    const kind = s % 10;
    const base = { session_id: big, emitter_id: 'em_big', seq: s, timestamp: at };
    if (s === 0) events.push(makeEvent({ ...base, event_type: 'session_start', payload: {} }));
    else if (s === 100) events.push(makeEvent({ ...base, event_id: deleg, event_type: 'delegation', payload: { subagent_id: 'research', latency_ms: 500 } }));
    else if (s > 100 && s < 120) events.push(makeEvent({ ...base, agent_id: 'research', payload: { tool: 'web.search', input: { q: s }, output: { hits: 3 }, latency_ms: 12 }, context: { parent_event_id: deleg } }));
    else if (s >= 5000 && s < 5240) events.push(makeEvent({ ...base, status: 'error', payload: { tool: 'stripe.create_payment', input: { attempt: s }, error: { name: 'RateLimit', message: '429' }, latency_ms: 12 } }));
    else if (kind === 3) events.push(makeEvent({ ...base, event_type: 'llm_call', payload: { model: 'claude-sonnet-4-5', input: `prompt ${s}`, output: `answer ${s}`.repeat(20), input_tokens: 1200, output_tokens: 300, cost_usd: 0.0081, latency_ms: 800 }, context: { reasoning: 'plan the next step' } }));
    else events.push(makeEvent({ ...base, payload: { tool: `tool.${kind}`, input: { s }, output: { ok: true, s }, latency_ms: 15 } }));
  }
  await produceRaw(pipeline.topic, events.map(record));
  await eventually('10k-event session materialized', async () => (await redis.llen(keys.events(big))) >= EVENTS, 300_000, 500);

  server = new WebServer(pipeline.settings(), { port: 0, maxStreams: CLIENTS + 10 });
  const url = await server.start();
  const time = async (path: string) => {
    const t = performance.now();
    const res = await fetch(`${url}${path}`);
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return performance.now() - t;
  };
  await time('/api/sessions');
  for (const q of ['limit=50', 'sort=cost&limit=50', 'status=error&limit=50', 'sort=tools&limit=50', 'limit=1000']) {
    const xs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) xs.push(await time(`/api/sessions?${q}`));
    process.stdout.write(`GET /api/sessions?${q}: ${fmt(xs)}\n`);
  }
  const sx: number[] = [];
  for (let r = 0; r < 5; r++) sx.push(await time(`/api/sessions/${big}`));
  process.stdout.write(`GET /api/sessions/<10k-event session>: ${fmt(sx)}\n`);

  // Time to interactive: navigation start to the first render with a step selected (performance mark).
  const browser = await launchBrowser();
  try {
    const tti: number[] = [];
    // Navigation to the session document parsed (server read + transfer + JSON), then to first render.
    const fetched: number[] = [];
    for (let r = 0; r < 5; r++) {
      const page = await browser.context.newPage();
      await page.goto(`${url}/#/session/${big}`);
      await page.waitForSelector('body[data-ready="session"]', { timeout: 60_000 });
      const marks = await page.evaluate(() => ({ fetched: performance.getEntriesByName('session-fetched')[0]!.startTime, interactive: performance.getEntriesByName('session-interactive')[0]!.startTime }));
      tti.push(marks.interactive);
      fetched.push(marks.fetched);
      // Responsiveness once open: a key press to the next error, rendered.
      const k0 = Date.now();
      await page.keyboard.press('e');
      await page.waitForFunction(() => document.querySelector('.row.selected.err') !== null, undefined, { polling: 'raf' });
      if (r === 0) process.stdout.write(`after opening: 'e' to the next error rendered in ${Date.now() - k0} ms; rows in the DOM: ${await page.locator('.row').count()} of ${await page.evaluate(() => document.querySelector('.spacer')!.clientHeight / 26)}\n`);
      await page.close();
    }
    process.stdout.write(`10k-event session page, navigation to interactive: ${fmt(tti)}; of which navigation to the document fetched and parsed: ${fmt(fetched)}\n`);
  } finally {
    await browser.close();
  }

  // 3. 100 live pages: each holds /api/stream; updates are timed from produce to each client's receipt.
  const received: Array<Map<string, number>> = [];
  const reqs = [];
  let ready = 0;
  for (let c = 0; c < CLIENTS; c++) {
    const got = new Map<string, number>();
    received.push(got);
    const req = request(`${url}/api/stream`, (res) => {
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith('event: ready')) ready++;
          const m = /^event: update\ndata: (.*)$/m.exec(block);
          if (m) {
            const u = JSON.parse(m[1]!) as { session_id: string };
            if (!got.has(u.session_id)) got.set(u.session_id, performance.now());
          }
        }
      });
    });
    req.end();
    reqs.push(req);
  }
  await eventually('all streams ready', () => ready === CLIENTS, 60_000, 50);
  const lat: number[] = [];
  let complete = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const sid = `sess_bench_live_${r}`;
    const sent = performance.now();
    await produceRaw(pipeline.topic, [record(makeEvent({ session_id: sid, emitter_id: 'em', seq: 0 }))]);
    await eventually(`round ${r} delivered`, () => received.every((g) => g.has(sid)), 30_000, 5).catch(() => undefined);
    const times = received.map((g) => g.get(sid)).filter((t): t is number => t !== undefined);
    if (times.length === CLIENTS) complete++;
    for (const t of times) lat.push(t - sent);
  }
  process.stdout.write(`${CLIENTS} live pages (SSE), produce → update received, ${ROUNDS} rounds: ${fmt(lat)}; rounds reaching every page: ${complete}/${ROUNDS}; open streams on the server: ${server.openStreams}\n`);
  for (const r of reqs) r.destroy();
} finally {
  await server?.close();
  await redis.quit();
  await pipeline.close();
}
process.exit(0);
