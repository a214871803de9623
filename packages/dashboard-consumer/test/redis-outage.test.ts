import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';
import { eventually, freePort, makeEvent, produceRaw, sleep } from '../../../test-support/stack.js';
import type { DashboardConsumer } from '../src/index.js';
import { fixture, testRedis, type Fixture } from './helpers.js';

// A Redis of this test's own (never the shared one), killed and restarted by its pid, on a port
// free when the test starts: a fixed port could hold a server left over by a run that died, and
// the test would then talk to that one instead of its own.
let PORT = 0;
let url = '';

function startRedis(dir: string): ChildProcess {
  // appendfsync always: what was acknowledged survives the SIGKILL, like a real restart.
  return spawn('redis-server', ['--port', String(PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
}

/** Resolves when the process has exited (at once if it already has). */
function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

async function waitUp(): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await eventually('own redis-server up', async () => {
      try {
        if (r.status !== 'ready') await r.connect();
        return (await r.ping()) === 'PONG';
      } catch {
        r.disconnect();
        return false;
      }
    }, 10_000, 100);
  } finally {
    r.disconnect();
  }
}

describe('Redis unavailable', () => {
  let f: Fixture;
  let server: ChildProcess;
  let dir: string;
  let mine: Redis;
  let c: DashboardConsumer;
  const sid = 'sess_outage';
  const texts = Array.from({ length: 400 }, (_, i) => JSON.stringify(makeEvent({ session_id: sid, seq: i })));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dash-redis-'));
    PORT = await freePort();
    url = `redis://127.0.0.1:${PORT}`;
    server = startRedis(dir);
    await waitUp();
    expect(server.exitCode, `redis-server on port ${PORT} exited at once`).toBeNull();
    mine = new Redis(url, { maxRetriesPerRequest: 1 });
    // Expected while the server is down on purpose.
    mine.on('error', () => undefined);
    f = await fixture('outage', 2);
    c = await f.start({ redisUrl: url, retryMinMs: 50, retryMaxMs: 400, batchSize: 50 });
  });

  afterAll(async () => {
    mine.disconnect();
    const shared = testRedis();
    await f.cleanup(shared);
    shared.disconnect();
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL');
      await exitOf(server);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('pauses while Redis is down, loses nothing and drains the lag when it returns', async () => {
    const k = redisKeys(f.prefix);
    await produceRaw(f.topic, texts.slice(0, 100).map((value) => ({ key: sid, value })));
    await eventually('first 100 applied', async () => (await mine.llen(k.events(sid))) === 100);

    const exited = exitOf(server);
    server.kill('SIGKILL');
    await exited;
    await produceRaw(f.topic, texts.slice(100).map((value) => ({ key: sid, value })));
    await eventually('consumer paused', () => c.stats().paused, 15_000);
    const metrics = await (await fetch(`${c.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/agenttrace_dashboard_paused\{[^}]*\} 1/);
    const lag = [...metrics.matchAll(/agenttrace_dashboard_consumer_lag\{[^}]*\} (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
    expect(lag).toBeGreaterThan(0);
    expect((await (await fetch(`${c.metricsUrl}/healthz`)).json()) as { redis: string }).toMatchObject({ redis: 'down' });
    // Still down a while later: nothing is dropped meanwhile.
    await sleep(1500);
    expect(c.stats().applied).toBe(100);

    server = startRedis(dir);
    await waitUp();
    await eventually('all 400 applied after Redis returned', async () => (await mine.llen(k.events(sid))) === 400, 30_000);
    expect(await mine.lrange(k.events(sid), 0, -1)).toEqual(texts);
    expect(await mine.hget(k.meta(sid), 'event_count')).toBe('400');
    expect(c.stats().paused).toBe(false);
    const after = await (await fetch(`${c.metricsUrl}/metrics`)).text();
    expect(after).toMatch(/agenttrace_dashboard_redis_retries_total\{[^}]*\} [1-9]/);
    await mine.flushall();
  });
});
