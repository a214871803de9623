/**
 * No output is ever cut (#13): a session of several MB, read from the real Kafka by the built
 * binary, gives the same bytes through a slow pipe reader as into a file, with the same exit
 * code; a reader that stops after one line (`| head -1`) ends kshark quietly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEvent } from '@agenttrace/contract';
import { runHeadOne, runSlowReader, runToFile } from '../../../test-support/cli-output.js';
import { createTopic, deleteTopic, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { CLI } from './fixtures.js';

const topic = uniqueName('kshark-output');
const SID = `sess_output_${uniqueName('o').replace(/[^a-z0-9_]/gi, '_')}`;
const EVENTS = 2500;
const T0 = Date.parse('2026-01-15T14:00:00Z');
const conn = ['--source', 'kafka', '--topic', topic, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];
const env = { ...process.env, NO_COLOR: '1' };

beforeAll(async () => {
  await createTopic(topic, 1);
  const events: AgentEvent[] = [];
  for (let i = 0; i < EVENTS; i++) {
    const text = `step ${i}: ${'lorem ipsum dolor sit amet '.repeat(80)}`;
    events.push(makeEvent({ session_id: SID, emitter_id: 'em_output', seq: i, timestamp: new Date(T0 + i * 10).toISOString(), payload: { tool: 'docs.read', input: { page: i }, output: { text }, latency_ms: 5 } }));
  }
  await produceRaw(topic, events.map((e) => ({ key: e.session_id, value: JSON.stringify(e) })));
}, 60_000);

afterAll(async () => {
  await deleteTopic(topic);
});

describe('kshark output through a pipe (built binary)', () => {
  it.each([
    ['--jsonl', ['--jsonl']],
    ['--json', ['--json']],
    ['the text timeline (--full)', ['--no-interactive', '--full']],
  ])('replay %s: a slow reader gets the same bytes as a file, and the same exit code', async (_name, flags) => {
    const args = ['replay', SID, ...conn, ...flags];
    const file = await runToFile(CLI, args, env);
    expect(file.stderr).toBe('');
    expect(file.code).toBe(0);
    // Several MB: far more than a pipe holds (64 KiB), so the writer must wait for the reader.
    expect(file.stdout.length).toBeGreaterThan(2 * 1024 * 1024);
    const piped = await runSlowReader(CLI, args, 1500, env);
    expect(piped.stderr).toBe('');
    expect(piped.code).toBe(0);
    expect(piped.stdout.length).toBe(file.stdout.length);
    expect(piped.stdout.equals(file.stdout)).toBe(true);
  }, 90_000);

  it('--jsonl | head -1 exits 0 with nothing on stderr', async () => {
    const r = await runHeadOne(CLI, ['replay', SID, ...conn, '--jsonl'], env);
    expect(JSON.parse(r.firstLine)).toMatchObject({ session_id: SID, seq: 0 });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
  }, 60_000);
});
