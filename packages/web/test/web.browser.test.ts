/// <reference lib="dom.iterable" />
/**
 * The web view end to end: sessions traced through the real tracer into Kafka, materialized in
 * Redis by the real dashboard consumer, served by WebServer, and driven in Debian's chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Page } from 'playwright-core';
import { redisKeys } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import { WebServer } from '../src/index.js';
import { makeCorpus } from '../../../reliability/corpus.js';
import { makeEvent, produceRaw, stack } from '../../../test-support/stack.js';
import { launchBrowser, type Browser } from './browser.js';
import { incidentSession, invoiceSession, Pipeline } from './fixtures.js';

/**
 * Callbacks given to page.evaluate run in the browser. The few page globals they use are declared
 * here, so the DOM library does not leak into every other package's test type-check.
 */
interface PageElement {
  readonly textContent: string | null;
  readonly attributes: Iterable<{ readonly name: string }>;
  getAttribute(name: string): string | null;
}
interface PageElements extends Iterable<PageElement> {
  readonly length: number;
}
declare const window: unknown;
declare const document: {
  addEventListener(type: 'securitypolicyviolation', listener: (e: { violatedDirective: string; blockedURI: string }) => void): void;
  querySelectorAll(selector: string): PageElements;
  readonly scripts: { readonly length: number };
};


const RETRIES = 40;
const INCIDENT = 'sess_web_incident';
const CMP_A = 'sess_web_cmp_a';
const CMP_B = 'sess_web_cmp_b';
const LIVE = 'sess_web_live';
const HOSTILE = 'sess_web_hostile';
const GONE = 'sess_web_left_redis';

/** Markup and script an agent's output could carry; each would set window.__pwned if it ever ran. */
const PAYLOADS = [
  '<script>window.__pwned="script"</script>',
  '<img src=x onerror="window.__pwned=\'img\'">',
  '"><svg onload="window.__pwned=\'svg\'"></svg>',
  'javascript:window.__pwned="href"',
  '<a href="javascript:window.__pwned=\'a\'">click</a>',
  '<iframe srcdoc="<script>parent.__pwned=\'iframe\'</script>"></iframe>',
  '<style>body{display:none}</style>',
  '\u202egnp.exe',
];

const pipeline = new Pipeline();
let server: WebServer;
let browser: Browser;
let url: string;
const corpusSessions: string[] = [];

function hostileEvents(): AgentEvent[] {
  const base = { session_id: HOSTILE, emitter_id: 'em_hostile', context: {} };
  const huge = `${PAYLOADS.join(' ')} ${'<script>window.__pwned="huge"</script>'.repeat(8000)}`;
  let seq = 0;
  const ev = (o: Partial<AgentEvent>) => makeEvent({ ...base, seq: seq++, ...o });
  return [
    ev({ event_type: 'session_start', agent_id: PAYLOADS[1]!, payload: {} }),
    ev({ event_type: 'tool_call', agent_id: PAYLOADS[1]!, payload: { tool: PAYLOADS[0]!, input: { q: PAYLOADS[3]!, html: PAYLOADS[4]! }, output: huge, latency_ms: 5 }, context: { reasoning: PAYLOADS[2]!, confidence: 0.5 } }),
    ev({ event_type: 'llm_call', agent_id: 'hostile-agent', payload: { model: PAYLOADS[5]!, input: PAYLOADS[6]!, output: PAYLOADS[7]!, input_tokens: 1, output_tokens: 1, cost_usd: 0.0001 } }),
    ev({ event_type: 'decision', agent_id: 'hostile-agent', payload: { action: PAYLOADS[3]!, options: PAYLOADS }, context: { reasoning: PAYLOADS.join('\n'), confidence: 0.1 } }),
    ev({ event_type: 'custom', agent_id: 'hostile-agent', payload: { name: PAYLOADS[4]!, data: PAYLOADS } }),
    ev({ event_type: 'error', status: 'error', agent_id: 'hostile-agent', payload: { error: { name: PAYLOADS[0]!, message: PAYLOADS[1]!, stack: PAYLOADS.join('\n') } } }),
  ];
}

beforeAll(async () => {
  await pipeline.start();
  await Promise.all([
    incidentSession(pipeline.tracer(INCIDENT), RETRIES),
    invoiceSession(pipeline.tracer(CMP_A), 'a'),
    invoiceSession(pipeline.tracer(CMP_B), 'b'),
    invoiceSession(pipeline.tracer(GONE), 'a'),
    ...Array.from({ length: 4 }, (_, i) => invoiceSession(pipeline.tracer(`sess_web_normal_${i}`), 'a')),
  ]);
  const live = pipeline.tracer(LIVE);
  await live.trackToolCall('first.tool', { n: 1 }, () => ({ ok: true }));
  await live.flush();
  const hostile = hostileEvents();
  const corpus = makeCorpus({ count: 0, hostileValid: 20, sessionPrefix: `${pipeline.topic}-c`, maxRecordBytes: 900_000 });
  for (const r of corpus) if (!corpusSessions.includes(String(r.key))) corpusSessions.push(String(r.key));
  await produceRaw(pipeline.topic, [...hostile.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })), ...corpus]);
  await pipeline.materialized({ [INCIDENT]: RETRIES + 5, [CMP_A]: 9, [CMP_B]: 9, [GONE]: 9, [LIVE]: 2, [HOSTILE]: hostile.length, [corpusSessions[0]!]: 2 });
  // A session that has left Redis (expired there); the web view must still open it from Kafka.
  const redis = new Redis(stack.redisUrl);
  const keys = redisKeys(pipeline.prefix);
  await redis.del(keys.events(GONE), keys.meta(GONE), keys.tools(GONE), keys.kafkaIndex(GONE));
  await redis.quit();
  server = new WebServer(pipeline.settings(), { port: 0 });
  url = await server.start();
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await pipeline.close();
});

/** Screenshots for docs/web.md, refreshed with AGENTTRACE_WEB_SCREENSHOTS=1 (tests do not rewrite tracked files otherwise). */
async function shot(page: Page, path: string): Promise<void> {
  if (process.env.AGENTTRACE_WEB_SCREENSHOTS === '1') await page.screenshot({ path });
}

/** A page that records whatever a payload could do: set the flag, open a dialog, break the CSP. */
async function openPage(path: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.context.newPage();
  const problems: string[] = [];
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.addInitScript(() => {
    const w = window as unknown as { __csp: string[] };
    w.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${url}/${path}`);
  return { page, problems };
}

describe('sessions page', () => {
  it('ranks the incident first by most tool calls, and serves the page under a strict CSP', async () => {
    const res = await fetch(`${url}/`);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const { page, problems } = await openPage('#/sessions');
    await page.locator('.rankings button[data-sort="tools"]').click();
    await page.waitForURL(/sort=tools/);
    const first = page.locator('#sessions-table tbody tr').first();
    await expect.poll(() => first.getAttribute('data-session'), { timeout: 15_000 }).toBe(INCIDENT);
    expect(await first.locator('td.tools').textContent()).toBe(String(RETRIES + 1));
    // The URL is shareable: opening it fresh gives the same ranking.
    const shared = await openPage(`#/sessions?sort=tools&status=error`);
    await expect.poll(() => shared.page.locator('#sessions-table tbody tr').first().getAttribute('data-session'), { timeout: 15_000 }).toBe(INCIDENT);
    await shot(page, 'docs/web/sessions.png');
    expect(problems).toEqual([]);
    await shared.page.close();
    await page.close();
  });
});

describe('session page', () => {
  it('folds the retry loop into one row with its count and failures; e jumps to the next error', async () => {
    const { page, problems } = await openPage('#/sessions?sort=tools');
    await page.locator(`#sessions-table tbody tr[data-session="${INCIDENT}"] a`).click();
    await page.waitForSelector('body[data-ready="session"]');
    const fold = page.locator('.row.fold');
    await expect.poll(() => fold.count()).toBe(1);
    expect(await fold.locator('.fold-badge').textContent()).toBe(`▸ ×${RETRIES} · ${RETRIES} failed`);
    expect(await fold.locator('.label').textContent()).toBe('stripe.create_payment');
    // session_start, crm, decision, the folded loop, the error, session_end.
    expect(await page.locator('.row').count()).toBe(6);
    await page.locator('#waterfall').focus();
    await page.keyboard.press('g');
    await page.keyboard.press('e');
    await expect.poll(() => page.locator('.row.selected .label').textContent()).toBe('stripe.create_payment');
    await expect.poll(() => page.locator('#step-detail .fold-note').textContent()).toContain(`${RETRIES} consecutive calls, ${RETRIES} failed`);
    await page.keyboard.press('e');
    await expect.poll(() => page.locator('.row.selected .label').textContent()).toContain('RetryBudgetExhausted');
    // The step is in the URL; opening that URL selects it again.
    const stepUrl = page.url();
    expect(stepUrl).toMatch(/#\/session\/sess_web_incident\?step=evt_/);
    await shot(page, 'docs/web/session.png');
    const again = await browser.context.newPage();
    await again.goto(stepUrl);
    await again.waitForSelector('body[data-ready="session"]');
    expect(await again.locator('.row.selected .label').textContent()).toContain('RetryBudgetExhausted');
    // Unfolding shows each attempt.
    await page.keyboard.press('k');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('.row.member').count()).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    await again.close();
    await page.close();
  });

  it('shows input, output, reasoning, confidence, model, tokens and cost of a step, and the sub-agent tree', async () => {
    const { page } = await openPage(`#/session/${CMP_A}`);
    await page.waitForSelector('body[data-ready="session"]');
    await page.locator('.row', { hasText: 'claude-sonnet-4-5' }).click();
    const detail = page.locator('#step-detail');
    await expect.poll(() => detail.textContent()).toContain('in 1,200 · out 300');
    const text = (await detail.textContent())!;
    expect(text).toContain('$0.0081');
    expect(text).toContain('need a draft');
    expect(text).toContain('Draft the invoice');
    expect(text).toContain('drafted');
    await page.locator('.row', { hasText: 'skip_email' }).click();
    await expect.poll(() => detail.textContent()).toContain('0.89');
    expect(await detail.textContent()).toContain('Customer disabled notifications');
    // web.search is nested under the delegation to research-agent.
    const deleg = page.locator('.row', { hasText: '→ research-agent' });
    const search = page.locator('.row', { hasText: 'web.search' });
    const pad = async (l: typeof deleg) => Number.parseInt((await l.locator('.name').getAttribute('style'))!.replace(/\D+/g, ''), 10);
    expect(await pad(search)).toBeGreaterThan(await pad(deleg));
    await page.close();
  });

  it('shows a step traced after the page opened within 1 s', async () => {
    const { page } = await openPage(`#/session/${LIVE}`);
    await page.waitForSelector('body[data-ready="session"]');
    await page.waitForSelector('#live-status[data-state="live"]');
    await page.locator('#waterfall').focus();
    await page.keyboard.press('G');
    const t0 = Date.now();
    const tracer = pipeline.tracer(LIVE, 'invoice-agent');
    await tracer.trackToolCall('late.tool', { n: 2 }, () => ({ ok: true }));
    await page.waitForFunction(() => [...document.querySelectorAll('.row .label')].some((l) => l.textContent === 'late.tool'), undefined, { timeout: 15_000, polling: 'raf' });
    const elapsed = Date.now() - t0;
    expect(elapsed, 'ms from tracing the step to its row on the page').toBeLessThanOrEqual(1000);
    await page.close();
  });

  it('opens a session that has left Redis from Kafka', async () => {
    const doc = (await (await fetch(`${url}/api/sessions/${GONE}`)).json()) as { source: string; events: AgentEvent[] };
    expect(doc.source).toBe('kafka');
    expect(doc.events).toHaveLength(9);
    const { page } = await openPage(`#/session/${GONE}`);
    await page.waitForSelector('body[data-ready="session"]');
    expect(await page.locator('#session-summary').textContent()).toContain('kafka, partition');
    await page.close();
  });
});

describe('compare page', () => {
  it('aligns two sessions as kdiff does and highlights the first divergence', async () => {
    const { page } = await openPage(`#/compare?a=${CMP_A}&b=${CMP_B}`);
    await page.waitForSelector('body[data-ready="compare"]');
    const div = page.locator('#divergence');
    expect(await div.count()).toBe(1);
    expect(await div.textContent()).toMatch(/stripe\.create_(invoice|refund)/);
    const banner = (await page.locator('#divergence-banner').textContent())!;
    expect(banner).toContain('A did tool_call stripe.create_invoice');
    expect(banner).toContain('B did tool_call stripe.create_refund');
    // Everything before the divergence is the same on both sides.
    const index = Number(await div.getAttribute('data-index'));
    expect(index).toBeGreaterThan(0);
    for (let i = 0; i < index; i++) expect(await page.locator(`#compare-table tbody tr[data-index="${i}"]`).getAttribute('data-op')).toBe('same');
    await shot(page, 'docs/web/compare.png');
    await page.close();
  });
});

describe('live page', () => {
  it('lists active sessions and the alerts the dashboard consumer fired', async () => {
    const { page } = await openPage('#/live');
    await page.waitForSelector('body[data-ready="live"]');
    await expect.poll(() => page.locator(`#live-sessions tbody tr[data-session="${LIVE}"]`).count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => page.locator('#alerts li .rule').count(), { timeout: 15_000 }).toBeGreaterThan(0);
    await shot(page, 'docs/web/live.png');
    await page.close();
  });
});

describe('hostile content', () => {
  it('renders markup, script URLs, bidi overrides and huge strings as inert text', async () => {
    const pages = [`#/sessions?limit=100`, `#/session/${HOSTILE}`, ...corpusSessions.slice(0, 3).map((s) => `#/session/${encodeURIComponent(s)}`), `#/compare?a=${HOSTILE}&b=${encodeURIComponent(corpusSessions[0]!)}`, '#/live'];
    for (const path of pages) {
      const { page, problems } = await openPage(path);
      await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
      if (path.startsWith('#/session/')) {
        // Every step's detail is rendered once; the huge output in full.
        await page.locator('#waterfall').focus();
        const rows = await page.locator('.row').count();
        for (let i = 0; i < rows; i++) {
          await page.keyboard.press('j');
          const all = page.locator('#step-detail button', { hasText: 'show all' });
          if ((await all.count()) > 0) await all.first().click();
        }
      }
      if (path === `#/session/${HOSTILE}`) {
        const text = (await page.locator('body').textContent())!;
        expect(text).toContain('<script>window.__pwned="script"</script>');
        // The right-to-left override is shown as an escape, not applied.
        expect(text).toContain('\\u{202e}gnp.exe');
        expect(text).not.toContain('\u202e');
        await page.keyboard.press('g');
        await page.locator('.row', { hasText: 'tool_call' }).first().click();
        await shot(page, 'docs/web/hostile.png');
      }
      const found = await page.evaluate(() => {
        const w = window as unknown as { __pwned?: unknown; __csp: string[] };
        const handlers = [...document.querySelectorAll('*')].filter((el) => [...el.attributes].some((a) => a.name.startsWith('on'))).length;
        const links = [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')!).filter((h) => !h.startsWith('#'));
        return { pwned: w.__pwned ?? null, csp: w.__csp, scripts: document.scripts.length, handlers, links, foreign: document.querySelectorAll('img, svg, iframe, style, object, embed').length };
      });
      expect({ path, ...found, problems }).toEqual({ path, pwned: null, csp: [], scripts: 1, handlers: 0, links: [], foreign: 0, problems: [] });
      await page.close();
    }
  });
});
