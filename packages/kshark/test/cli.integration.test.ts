import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partitionForKey, type AgentEvent } from '@agenttrace/contract';
import { createTopic, deleteTopic, eventually, makeEvent, produceRaw, stack, uniqueName, type RawRecord } from '../../../test-support/stack.js';
import { CLI, HOSTILE, kshark, sampleSession } from './fixtures.js';

const PARTITIONS = 4;
const topic = uniqueName('kshark-cli');
const prefix = `${uniqueName('kshark-cli')}:`;
const T0 = Date.parse('2026-01-15T14:00:00Z');
const SID = 'sess_cli_target';
let events: AgentEvent[];
const tmp = mkdtempSync(join(tmpdir(), 'kshark-test-'));

const record = (e: AgentEvent): RawRecord => ({ key: e.session_id, value: JSON.stringify(e) });
/** Connection flags for the test topic; the Redis prefix is unique and empty, so Kafka answers. */
const conn = ['--topic', topic, '--redis-prefix', prefix, '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket];

beforeAll(async () => {
  await createTopic(topic, PARTITIONS);
  events = sampleSession(SID, T0);
  const others: AgentEvent[] = [];
  for (let i = 0; i < 60; i++) others.push(makeEvent({ session_id: `sess_cli_other_${i % 6}`, emitter_id: `em_o${i % 6}`, seq: Math.floor(i / 6), timestamp: new Date(T0 + i * 100).toISOString() }));
  const mixed: AgentEvent[] = [];
  for (let i = 0; i < Math.max(events.length, others.length); i++) {
    if (events[i]) mixed.push(events[i]!);
    if (others[i]) mixed.push(others[i]!);
  }
  await produceRaw(topic, mixed.map(record));
});

afterAll(async () => {
  await deleteTopic(topic);
  rmSync(tmp, { recursive: true, force: true });
});

describe('kshark replay (built binary, Kafka source)', () => {
  it('prints the timeline in tree order with offsets, reasoning, errors and a summary naming the source', async () => {
    const r = await kshark(['replay', SID, ...conn]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = r.stdout;
    // The delegation is shown before the steps it contains, although it came after them.
    const deleg = out.indexOf('delegation  → research-agent');
    expect(deleg).toBeGreaterThan(-1);
    expect(out.indexOf('web.search')).toBeGreaterThan(deleg);
    expect(out).toMatch(/\+1\.100s\s+#2\s+research-agent\s+├─ tool_call\s+web\.search\s+300ms/);
    expect(out).toMatch(/research-agent\s+└─ llm_call\s+claude-sonnet-4-5/);
    expect(out).toContain('usage: in 1200 tok · out 300 tok · $0.0081');
    expect(out).toContain('reasoning: Customer disabled notifications');
    expect(out).toContain('confidence 0.89');
    expect(out).toMatch(/stripe\.create_payment\s+ERROR\s+20ms/);
    expect(out).toContain('error: StripeError: rate limited');
    expect(out).toContain(`Session ${SID}  (source: kafka, partition ${partitionForKey(SID, PARTITIONS)})`);
    expect(out).toMatch(/10 events: tool_call 4/);
    expect(out).toContain('tokens: in 1,200, out 300; cost $0.0081');
    expect(out).toContain('errors: 2');
    expect(out).not.toContain('sess_cli_other');
  });

  it('neutralizes terminal escapes from events and uses no color off a TTY', async () => {
    const r = await kshark(['replay', SID, ...conn]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(r.stdout).toContain('pwned\\e[2J\\e]0;evil-title\\x07 \\u{202e}gnp.exe\\x9b31m');
    const colored = await kshark(['replay', SID, ...conn, '--color']);
    expect(colored.stdout).toContain('\u001b[');
    // Our own colors only: the event's escape is still shown neutralized.
    expect(colored.stdout).toContain('pwned\\e[2J');
    expect(colored.stdout).not.toContain('\u001b[2J');
  });

  it('--json gives one stable document; filters apply to its events, not to the summary', async () => {
    const r = await kshark(['replay', SID, ...conn, '--json', '--type', 'tool_call,error']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { format: string; session_id: string; source: string; total_events: number; summary: { event_count: number; cost_usd: number; error_count: number }; events: AgentEvent[] };
    expect(doc.format).toBe('kshark.replay.v1');
    expect(doc.source).toBe('kafka');
    expect(doc.total_events).toBe(10);
    expect(doc.summary).toMatchObject({ event_count: 10, cost_usd: 0.0081, error_count: 2 });
    expect(doc.events.map((e) => e.seq)).toEqual([1, 2, 6, 7, 8]);
    // The hostile output is intact as data but cannot act on a terminal.
    expect(r.stdout).not.toMatch(/[\u001b\u0007\u009b\u202e]/);
    expect(doc.events.find((e) => e.seq === 6)!.payload.output).toBe(HOSTILE);
  });

  it('--jsonl prints one contract event per line; --agent and --grep filter', async () => {
    const r = await kshark(['replay', SID, ...conn, '--jsonl', '--agent', 'research-agent']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as AgentEvent);
    expect(lines.map((e) => e.seq)).toEqual([2, 3]);
    const g = await kshark(['replay', SID, ...conn, '--jsonl', '--grep', 'STRIPE|giveup']);
    expect(g.stdout.trim().split('\n').map((l) => (JSON.parse(l) as AgentEvent).seq)).toEqual([7, 8]);
  });

  it('--from/--to keep a time window (ISO-8601)', async () => {
    const r = await kshark(['replay', SID, ...conn, '--jsonl', '--from', new Date(T0 + 2500).toISOString(), '--to', new Date(T0 + 5500).toISOString()]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as AgentEvent).seq)).toEqual([5, 6, 7]);
  });

  it('--full shows a long value in full instead of truncating it', async () => {
    const short = await kshark(['replay', SID, ...conn, '--grep', 'rate limited']);
    expect(short.code).toBe(0);
    const full = await kshark(['replay', SID, ...conn, '--full', '--type', 'delegation']);
    expect(full.stdout).toMatch(/task:\n\s+\{\n\s+"topic": "acme"\n\s+\}/);
  });
});

describe('kshark errors (exit codes, clear messages, no stack traces)', () => {
  const noStack = (s: string) => expect(s).not.toMatch(/\n\s+at /);

  it('unknown session: exit 3', async () => {
    const r = await kshark(['replay', 'sess_does_not_exist', ...conn]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/kshark: session "sess_does_not_exist" was not found \(searched redis, kafka/);
    noStack(r.stderr);
  });

  it('bad time expression: exit 2', async () => {
    const r = await kshark(['replay', SID, ...conn, '--from', 'yesterday-ish']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cannot read --from "yesterday-ish"');
    noStack(r.stderr);
  });

  it('bad flag values: exit 2', async () => {
    expect((await kshark(['replay', SID, ...conn, '--type', 'bogus'])).code).toBe(2);
    expect((await kshark(['replay', SID, ...conn, '--source', 'nowhere'])).code).toBe(2);
    expect((await kshark(['replay', SID, ...conn, '--grep', '('])).code).toBe(2);
    expect((await kshark(['replay', SID, '--no-such-flag'])).code).toBe(2);
    expect((await kshark(['replay', SID, ...conn, '--json', '--follow'])).code).toBe(2);
    // Not a terminal: the interactive view cannot run.
    expect((await kshark(['replay', SID, ...conn, '--interactive'])).code).toBe(2);
    expect((await kshark([])).code).toBe(2);
    expect((await kshark(['bogus'])).code).toBe(2);
  });

  it('unreachable Kafka: exit 4 and says where', async () => {
    const r = await kshark(['replay', SID, ...conn, '--source', 'kafka', '--brokers', '127.0.0.1:1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/kafka source unavailable: Kafka at 127\.0\.0\.1:1/);
    noStack(r.stderr);
  });

  it('unreachable Redis: exit 4, says where, never prints the password', async () => {
    const r = await kshark(['replay', SID, ...conn, '--source', 'redis', '--redis-url', 'redis://:s3cret@127.0.0.1:1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/redis source unavailable: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
    expect(r.stderr).not.toContain('s3cret');
  });

  it('unreachable S3 while restoring an offloaded payload: the replay still works and warns', async () => {
    const sid = 'sess_cli_offload';
    const e = makeEvent({ session_id: sid, emitter_id: 'em', seq: 0, payload: { tool: 't', output: { $offload: { bucket: stack.s3Bucket, key: 'x/payloads/sha256/00/none.json', size: 3, sha256: '00' } } }, offload: { fields: ['payload.output'] } });
    await produceRaw(topic, [record(e)]);
    const r = await kshark(['replay', sid, ...conn, '--s3-endpoint', 'http://127.0.0.1:1']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/warning: event .* could not fetch offloaded payload s3:\/\/agenttrace\/x\/payloads/);
  });

  it('a field whose upload failed, and one that could not be fetched, are never shown as restored (#14)', async () => {
    const sid = 'sess_cli_offload_failed';
    const failed = makeEvent({ session_id: sid, emitter_id: 'em', seq: 0, payload: { tool: 't', output: 'kept inline' }, offload: { fields: ['payload.output'], failed: 'upload to S3 bucket "agenttrace" failed: socket hang up' } });
    const missing = makeEvent({ session_id: sid, emitter_id: 'em', seq: 1, payload: { tool: 't', output: { $offload: { bucket: stack.s3Bucket, key: 'x/payloads/sha256/00/none.json', size: 3, sha256: '00' } } }, offload: { fields: ['payload.output'] } });
    await produceRaw(topic, [record(failed), record(missing)]);
    const r = await kshark(['replay', sid, ...conn, '--s3-endpoint', 'http://127.0.0.1:1']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('and restored');
    expect(r.stdout).toContain('not stored in S3, kept inline');
    expect(r.stdout).toContain('NOT restored');
  });

  it('malformed config file: exit 2', async () => {
    const f = join(tmp, 'bad.json');
    writeFileSync(f, '{ nope');
    const r = await kshark(['replay', SID, '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`config file ${f} is not valid JSON`);
  });

  it('config file settings apply, flags override them', async () => {
    const f = join(tmp, 'good.json');
    writeFileSync(f, JSON.stringify({ topic, brokers: ['127.0.0.1:1'], redisPrefix: prefix }));
    const viaFile = await kshark(['replay', SID, '--config', f, '--brokers', stack.brokers.join(','), '--jsonl']);
    expect(viaFile.code).toBe(0);
    expect(viaFile.stdout.trim().split('\n')).toHaveLength(10);
  });

  it('--help on every command has examples and the exit codes', async () => {
    for (const cmd of [[], ['replay'], ['sessions'], ['top']]) {
      const r = await kshark([...cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain('3  session not found');
    }
  });
});

describe('kshark replay interactive (built binary on a pseudo-terminal)', () => {
  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!hasScript)('opens the ink view on a terminal, jumps to an error, expands it and quits on q', async () => {
    const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
    const cmd = `stty cols 120 rows 30; NO_COLOR=1 ${quote(process.execPath)} ${quote(CLI)} replay ${SID} ${conn.map(quote).join(' ')}`;
    // script(1) gives the binary a real pseudo-terminal on stdin and stdout, as a user's shell would.
    // ink renders only the last frame when it sees CI=true (as in CI runs); a user's terminal has no CI.
    const { CI: _ci, ...userEnv } = process.env;
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: userEnv });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const plain = () => out.replace(/\u001b\[[0-9;?]*[a-zA-Z]/g, '');
    try {
      await eventually('the interactive view', () => plain().includes('1/10 · 2 errors'), 20_000);
      child.stdin.write('e');
      await eventually('cursor on the first error', () => plain().includes('8/10 · 2 errors'), 10_000);
      child.stdin.write('\r');
      await eventually('the expanded step', () => plain().includes('error: StripeError: rate limited'), 10_000);
      child.stdin.write('q');
      expect(await closed).toBe(0);
    } finally {
      child.kill();
    }
    expect(plain()).not.toContain(HOSTILE);
  });
});

describe('kshark replay --follow', () => {
  it('streams new events of the session until interrupted', async () => {
    const sid = 'sess_cli_follow';
    const first = [0, 1, 2].map((seq) => makeEvent({ session_id: sid, emitter_id: 'em', seq }));
    await produceRaw(topic, first.map(record));
    const child = spawn(process.execPath, [CLI, 'replay', sid, ...conn, '--jsonl', '--follow'], { env: { ...process.env } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    try {
      await eventually('initial events', () => out.trim().split('\n').filter(Boolean).length >= 3, 20_000);
      await produceRaw(topic, [3, 4].map((seq) => record(makeEvent({ session_id: sid, emitter_id: 'em', seq }))));
      await eventually('followed events', () => out.trim().split('\n').length >= 5, 20_000);
    } finally {
      child.kill('SIGINT');
    }
    expect(await closed).toBe(0);
    expect(out.trim().split('\n').map((l) => (JSON.parse(l) as AgentEvent).seq)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('kshark sessions', () => {
  it('lists sessions from a bounded Kafka scan with filters, as a table and as JSON', async () => {
    const r = await kshark(['sessions', ...conn, '--json', '--status', 'error']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { format: string; source: string; sessions: Array<{ session_id: string; status: string; event_count: number }> };
    expect(doc.format).toBe('kshark.sessions.v1');
    expect(doc.source).toBe('kafka');
    expect(doc.sessions.map((s) => s.session_id)).toEqual([SID]);
    const table = await kshark(['sessions', ...conn, '--sort', 'errors', '--limit', '2']);
    expect(table.code).toBe(0);
    const rows = table.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^SESSION\s+AGENT/);
    expect(rows).toHaveLength(3);
    expect(rows[1]).toContain(SID);
    expect((await kshark(['sessions', ...conn, '--since', 'soon'])).code).toBe(2);
  });
});
