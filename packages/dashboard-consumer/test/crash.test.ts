import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { redisKeys } from '@agenttrace/common';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, repoRoot, sleep, stack, uniqueName } from '../../../test-support/stack.js';
import { dropPrefix, testRedis } from './helpers.js';

const bin = join(repoRoot, 'packages/dashboard-consumer/dist/cli.js');

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

function launch(args: string[]): Running {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  return { child, exited, output: () => out };
}

describe('exactly once under SIGKILL', () => {
  const topic = uniqueName('dash-crash');
  const group = uniqueName('dash-crash-g');
  const prefix = `${uniqueName('dash-crash')}:`;
  const sessions = 40;
  const chunks = 20;
  const perChunk = 200;
  const total = chunks * perChunk;
  const expected = new Map<string, string[]>();
  let redis: Redis;
  let current: Running | undefined;

  const args = [
    '--brokers', stack.brokers.join(','), '--topic', topic, '--group', group, '--redis-url', stack.redisUrl, '--redis-prefix', prefix,
    '--dlq-topic', `${topic}.dlq`, '--alerts-topic', `${topic}.alerts`, '--metrics-port', 'off', '--instance-id', 'crash-test-1',
    '--no-alerts', '--status-interval', '0', '--batch-size', '150',
  ];

  beforeAll(async () => {
    redis = testRedis();
    await createTopic(topic, 4);
  });

  afterAll(async () => {
    if (current && current.child.exitCode === null) current.child.kill('SIGKILL');
    await dropPrefix(redis, prefix);
    redis.disconnect();
    await Promise.all([deleteTopic(topic), deleteTopic(`${topic}.dlq`), deleteTopic(`${topic}.alerts`)]);
  });

  const applied = async () => {
    const o = await redis.hgetall(redisKeys(prefix).offsets(group, topic));
    return Object.values(o).reduce((s, v) => s + Number(v), 0);
  };

  it('matches the produced stream after 8 kills at random moments', async () => {
    const seq = new Map<string, number>();
    const producing = (async () => {
      for (let c = 0; c < chunks; c++) {
        const records = [];
        for (let i = 0; i < perChunk; i++) {
          const sid = `sess_${(c * perChunk + i) % sessions}`;
          const n = seq.get(sid) ?? 0;
          seq.set(sid, n + 1);
          const text = JSON.stringify(makeEvent({ session_id: sid, emitter_id: 'em_crash', seq: n, payload: { tool: `tool_${n % 3}`, input: { n } } }));
          if (!expected.has(sid)) expected.set(sid, []);
          expected.get(sid)!.push(text);
          records.push({ key: sid, value: text });
        }
        await produceRaw(topic, records);
        await sleep(600);
      }
    })();

    const progressAtKill: number[] = [];
    current = launch(args);
    for (let kill = 0; kill < 8; kill++) {
      await sleep(1200 + Math.floor(Math.random() * 2800));
      progressAtKill.push(await applied());
      current.child.kill('SIGKILL');
      expect(await current.exited).toBe(null);
      current = launch(args);
    }
    await producing;
    await eventually('every record applied', async () => (await applied()) === total, 60_000, 250);
    // A signal that arrives while the process is still loading takes the default action; wait for it to run.
    await eventually('the last instance started', () => /started/.test(current!.output()), 20_000);
    current.child.kill('SIGTERM');
    expect(await current.exited, current.output()).toBe(0);

    // The kills landed while work was under way, not all before or after it.
    expect(progressAtKill.filter((p) => p > 0 && p < total).length).toBeGreaterThanOrEqual(4);
    const k = redisKeys(prefix);
    let stored = 0;
    for (const [sid, texts] of expected) {
      const got = await redis.lrange(k.events(sid), 0, -1);
      expect(got.length, `${sid} length`).toBe(texts.length);
      expect(got, `${sid} order and content`).toEqual(texts);
      expect(Number(await redis.hget(k.meta(sid), 'event_count'))).toBe(texts.length);
      const tools = await redis.hgetall(k.tools(sid));
      expect(Object.values(tools).reduce((s, v) => s + Number(v), 0)).toBe(texts.length);
      stored += got.length;
    }
    expect(stored).toBe(total);
  }, 150_000);
});
