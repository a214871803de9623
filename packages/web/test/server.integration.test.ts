/**
 * The server's safety and API contract against the real stack: headers, loopback binding, the
 * token, the Host check, no credential in any answer, bad requests, and the CLI's own checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { join } from 'node:path';
import { resolveSettings } from '@agenttrace/common';
import { WebServer } from '../src/index.js';
import { eventually, repoRoot, runNode, stack } from '../../../test-support/stack.js';
import { invoiceSession, Pipeline } from './fixtures.js';

const CLI = join(repoRoot, 'packages', 'web', 'dist', 'cli.js');
const TOKEN = 'test-token-0123456789abcdef';
const BIG_OUTPUT = `report ${'x'.repeat(40_000)}`;
const pipeline = new Pipeline();
let open: WebServer;
let guarded: WebServer;

/** A raw GET (fetch cannot set Host). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  await pipeline.start();
  await invoiceSession(pipeline.tracer('sess_web_api'), 'a');
  // A large output: the tracer offloads it to S3 (stack settings from the environment).
  const big = pipeline.tracer('sess_web_offload');
  await big.trackToolCall('report.render', { id: 1 }, () => BIG_OUTPUT);
  big.endSession({ status: 'ok' });
  await big.flush();
  await pipeline.materialized({ sess_web_api: 9, sess_web_offload: 3 });
  open = new WebServer(pipeline.settings(), { port: 0 });
  await open.start();
  guarded = new WebServer(pipeline.settings(), { port: 0, token: TOKEN });
  await guarded.start();
}, 120_000);

afterAll(async () => {
  await open?.close();
  await guarded?.close();
  await pipeline.close();
});

describe('API', () => {
  it('answers JSON with the security headers, filters and rankings', async () => {
    const r = await get(`${open.url}/api/sessions?sort=tools&status=completed&limit=5`);
    expect(r.status).toBe(200);
    expect(r.headers['content-security-policy']).toBe("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    const doc = JSON.parse(r.body) as { source: string; sessions: Array<{ session_id: string; tool_calls: number; status: string }> };
    expect(doc.source).toBe('redis');
    // Ranked by tool calls: 4 before 1.
    expect(doc.sessions).toEqual([expect.objectContaining({ session_id: 'sess_web_api', tool_calls: 4, status: 'completed' }), expect.objectContaining({ session_id: 'sess_web_offload', tool_calls: 1, status: 'completed' })]);
    expect(JSON.parse((await get(`${open.url}/api/sessions?min_cost=5`)).body)).toMatchObject({ sessions: [] });
  });

  it('refuses bad parameters with 400 naming the parameter', async () => {
    for (const [q, word] of [['sort=bogus', 'sort'], ['limit=0', 'limit'], ['status=odd', 'status'], ['since=yesterday-ish', 'since'], ['min_cost=abc', 'min_cost']]) {
      const r = await get(`${open.url}/api/sessions?${q}`);
      expect(r.status, q).toBe(400);
      expect((JSON.parse(r.body) as { error: { message: string } }).error.message).toContain(word);
    }
    expect((await get(`${open.url}/api/sessions/x/stream?cursor=${encodeURIComponent('{"source":"kafka","topic":"other"}')}`)).status).toBe(400);
    expect((await get(`${open.url}/api/compare?a=x`)).status).toBe(400);
    expect((await get(`${open.url}/api/nothing`)).status).toBe(404);
    expect((await get(`${open.url}/../../etc/passwd`)).status).toBe(404);
  });

  it('404 for an unknown session, with what was searched', async () => {
    const r = await get(`${open.url}/api/sessions/sess_nobody`);
    expect(r.status).toBe(404);
    expect(r.body).toContain('was not found (searched redis, kafka');
  });

  it('leaves offloaded payloads as references and loads one on demand', async () => {
    const doc = JSON.parse((await get(`${open.url}/api/sessions/sess_web_offload`)).body) as { events: Array<{ event_id: string; event_type: string; payload: { output?: unknown }; offload?: { fields: string[] } }> };
    const e = doc.events.find((x) => x.event_type === 'tool_call')!;
    expect(e.offload?.fields).toContain('payload.output');
    expect(e.payload.output).toMatchObject({ $offload: expect.any(Object) });
    const r = await get(`${open.url}/api/sessions/sess_web_offload/events/${e.event_id}/payload`);
    expect(r.status).toBe(200);
    const loaded = JSON.parse(r.body) as { event: { payload: { output: unknown } }; warnings: string[] };
    expect(loaded.warnings).toEqual([]);
    expect(loaded.event.payload.output).toBe(BIG_OUTPUT);
    expect((await get(`${open.url}/api/sessions/sess_web_offload/events/evt_nope/payload`)).status).toBe(404);
  });

  it('refuses other methods', async () => {
    const res = await fetch(`${open.url}/api/sessions`, { method: 'POST' });
    expect(res.status).toBe(405);
  });
});

describe('live pages', () => {
  it('one server feeds 100 open pages: every stream gets the update of a newly traced step', async () => {
    const CLIENTS = 100;
    const got = new Set<number>();
    let ready = 0;
    const reqs = Array.from({ length: CLIENTS }, (_, c) => {
      const req = request(`${open.url}/api/stream`, (res) => {
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (d: string) => {
          buf += d;
          if (buf.includes('event: ready') && !buf.includes('counted')) {
            ready++;
            buf += 'counted';
          }
          if (buf.includes('"session_id":"sess_web_fanout"')) got.add(c);
        });
      });
      req.on('error', () => undefined);
      req.end();
      return req;
    });
    try {
      await eventually('100 streams subscribed', () => ready === CLIENTS, 30_000, 20);
      expect(open.openStreams).toBe(CLIENTS);
      const t = pipeline.tracer('sess_web_fanout');
      await t.trackToolCall('fanout.tool', {}, () => 1);
      await eventually('the update on every stream', () => got.size === CLIENTS, 30_000, 20);
    } finally {
      for (const r of reqs) r.destroy();
    }
    await eventually('streams closed', () => open.openStreams === 0, 10_000, 20);
  });
});

describe('binding and the token', () => {
  it('answers only to loopback host names when bound to loopback (DNS rebinding)', async () => {
    const port = new URL(open.url).port;
    expect((await get(`${open.url}/api/sessions`, { Host: `evil.example:${port}` })).status).toBe(421);
    expect((await get(`${open.url}/api/sessions`, { Host: `localhost:${port}` })).status).toBe(200);
  });

  it('requires a token for any address but loopback', () => {
    expect(() => new WebServer(pipeline.settings(), { host: '0.0.0.0', port: 0 })).toThrow(/options\.token is required when binding 0\.0\.0\.0/);
    expect(() => new WebServer(pipeline.settings(), { host: '0.0.0.0', port: 0, token: 'short' })).toThrow(/at least 16 characters/);
  });

  it('with a token: 401 without it, a cookie from ?token= (then redirected without it), or a bearer header', async () => {
    expect((await get(`${guarded.url}/api/sessions`)).status).toBe(401);
    expect((await get(`${guarded.url}/`)).status).toBe(401);
    expect((await get(`${guarded.url}/api/sessions`, { Authorization: 'Bearer wrong-token-0000000000' })).status).toBe(401);
    const redirect = await get(`${guarded.url}/?token=${TOKEN}`);
    expect(redirect.status).toBe(303);
    expect(redirect.headers.location).toBe('/');
    const cookie = String(redirect.headers['set-cookie']).split(';')[0]!;
    expect(String(redirect.headers['set-cookie'])).toContain('HttpOnly; SameSite=Strict');
    expect((await get(`${guarded.url}/api/sessions`, { Cookie: cookie })).status).toBe(200);
    expect((await get(`${guarded.url}/api/sessions`, { Authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    // The token itself never comes back in a body.
    expect((await get(`${guarded.url}/api/config`, { Cookie: cookie })).body).not.toContain(TOKEN);
  });

  it('never returns a credential, even in error messages', async () => {
    const secret = 'pa55-w0rd-Secret';
    const s = new WebServer(
      resolveSettings({ topic: pipeline.topic, redisPrefix: pipeline.prefix, brokers: '127.0.0.1:1', redisUrl: `redis://user:${secret}@127.0.0.1:1`, s3Endpoint: stack.s3Endpoint, s3Bucket: stack.s3Bucket }, { AGENTTRACE_KAFKA_SASL_USERNAME: 'u', AGENTTRACE_KAFKA_SASL_PASSWORD: `${secret}-sasl` }),
      { port: 0 },
    );
    await s.start();
    try {
      for (const path of ['/api/sessions', '/api/sessions/sess_x', '/api/live', '/api/config', '/api/compare?a=x&b=y']) {
        const r = await get(`${s.url}${path}`);
        expect(r.body, path).not.toContain(secret);
      }
      const cfg = JSON.parse((await get(`${s.url}/api/config`)).body) as { sources: { redis: string } };
      expect(cfg.sources.redis).toBe('Redis at redis://user:***@127.0.0.1:1');
    } finally {
      await s.close();
    }
  });
});

describe('agenttrace-web (built binary)', () => {
  it('--help has examples, the exit codes and the settings', async () => {
    const r = await runNode(CLI, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('AGENTTRACE_WEB_TOKEN');
  });

  it('refuses a non-loopback address without a token (exit 2), and a bad port', async () => {
    const env = { ...process.env, AGENTTRACE_WEB_TOKEN: '' };
    const r = await runNode(CLI, ['--host', '0.0.0.0', '--port', '0'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('agenttrace-web: options.token is required when binding 0.0.0.0');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const p = await runNode(CLI, ['--port', 'eighty'], { env });
    expect(p.code).toBe(2);
    expect(p.stderr).toContain('--port must be a port number');
  });

  it('a port in use: exit 3 naming it', async () => {
    const port = new URL(open.url).port;
    const r = await runNode(CLI, ['--port', port], { env: { ...process.env } });
    expect(r.code).toBe(9);
    expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}: the port is in use`);
  });
});
