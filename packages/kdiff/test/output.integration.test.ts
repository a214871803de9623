/**
 * No output is ever cut (#13): `kdiff compare --json` of two long sessions read from the real
 * Kafka gives the same bytes through a slow pipe reader as into a file, with the same exit
 * status; a reader that stops after one line (`| head -1`) leaves kdiff's status unchanged
 * (0 same, 1 different) and stderr empty.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { AgentEvent } from '@agenttrace/contract';
import { runHeadOne, runSlowReader, runToFile } from '../../../test-support/cli-output.js';
import { createTopic, deleteTopic, makeEvent, produceRaw, repoRoot, stack, uniqueName } from '../../../test-support/stack.js';

const CLI = join(repoRoot, 'packages', 'kdiff', 'dist', 'cli.js');
const topic = uniqueName('kdiff-output');
const run = uniqueName('o').replace(/[^a-z0-9_]/gi, '_');
const sid = (name: string): string => `sess_kdiff_output_${run}_${name}`;
const STEPS = 1500;
const T0 = Date.parse('2026-01-15T14:00:00Z');
const conn = ['--source', 'kafka', '--topic', topic, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];
const env = { ...process.env, NO_COLOR: '1' };

/** A long session; `variant` changes every step's output, so two variants differ at every step. */
function session(id: string, variant: string): AgentEvent[] {
  const events: AgentEvent[] = [];
  for (let i = 0; i < STEPS; i++) {
    const text = `${variant} ${i}: ${'lorem ipsum dolor sit amet '.repeat(60)}`;
    events.push(makeEvent({ session_id: id, emitter_id: `em_${id}`, seq: i, timestamp: new Date(T0 + i * 10).toISOString(), payload: { tool: 'docs.read', input: { page: i }, output: { text }, latency_ms: 5 } }));
  }
  return events;
}

beforeAll(async () => {
  await createTopic(topic, 1);
  const events = [...session(sid('a'), 'first'), ...session(sid('b'), 'second'), ...session(sid('a2'), 'first')];
  await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
}, 60_000);

afterAll(async () => {
  await deleteTopic(topic);
});

describe('kdiff output through a pipe (built binary)', () => {
  it('compare --json: a slow reader gets the same bytes as a file, and the same exit status', async () => {
    const args = ['compare', sid('a'), sid('b'), ...conn, '--json'];
    const file = await runToFile(CLI, args, env);
    expect(file.stderr).toBe('');
    expect(file.code).toBe(1);
    // Several MB: far more than a pipe holds (64 KiB), so kdiff must wait for the reader.
    expect(file.stdout.length).toBeGreaterThan(2 * 1024 * 1024);
    const piped = await runSlowReader(CLI, args, 1500, env);
    expect(piped.stderr).toBe('');
    expect(piped.code).toBe(1);
    expect(piped.stdout.length).toBe(file.stdout.length);
    expect(piped.stdout.equals(file.stdout)).toBe(true);
  }, 90_000);

  it.each([
    ['same sessions', 'a2', 0],
    ['different sessions', 'b', 1],
  ])('compare --json | head -1 of %s keeps the status (%s) and prints nothing on stderr', async (_name, other, status) => {
    const args = ['compare', sid('a'), sid(other), ...conn, '--json'];
    // Far more than the pipe holds, so kdiff is still writing when the reader goes away.
    const whole = await runToFile(CLI, args, env);
    expect(whole.code).toBe(status);
    expect(whole.stdout.length).toBeGreaterThan(512 * 1024);
    const r = await runHeadOne(CLI, args, env);
    expect(r.firstLine).toBe('{');
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(status);
  }, 60_000);
});
