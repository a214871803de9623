import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { hourStartOf } from '@agenttrace/archive-format';
import { createTopic, deleteTopic, makeEvent, produceRaw, repoRoot, sleep, stack, uniqueName } from '../../../test-support/stack.js';
import { deletePrefix, downloadPrefix, duck, highWatermarks, s3 } from './helpers.js';

const bin = join(repoRoot, 'packages/archiver/dist/cli.js');
const client = s3();
const topic = uniqueName('arch-crash');
const prefix = uniqueName('arch-crash');
const group = uniqueName('arch-crash-group');
const PARTITIONS = 4;
const WAVES = 8;
const PER_WAVE = 500;
const KILLS = 7;
let dir: string | undefined;
const children = new Set<ChildProcess>();

interface Run {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs: number): Promise<boolean>;
}

/** Highest committed offset per partition seen in any run's log. */
const committed: Record<number, number> = {};

function startArchiver(): Run {
  const child = spawn(
    process.execPath,
    [bin, '--topic', topic, '--dlq-topic', `${topic}.dlq`, '--group', group, '--instance-id', `${group}-0`, '--s3-prefix', prefix, '--roll-rows', '150', '--roll-age', '700ms', '--json', '--verbose'],
    { env: { ...process.env, AGENTTRACE_BROKERS: stack.brokers.join(','), AGENTTRACE_S3_ENDPOINT: stack.s3Endpoint, AGENTTRACE_S3_BUCKET: stack.s3Bucket }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stderr! }).on('line', (text) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(text) as Record<string, unknown>;
    } catch {
      l = { msg: text };
    }
    lines.push(l);
    if (l.msg === 'committed') committed[Number(l.partition)] = Math.max(committed[Number(l.partition)] ?? 0, Number(l.offset));
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => (children.delete(child), res(code))));
  return {
    child,
    lines,
    exited,
    waitFor: (pred, timeoutMs) =>
      new Promise<boolean>((resolve) => {
        let from = lines.length;
        const check = () => {
          for (; from < lines.length; from++) if (pred(lines[from]!)) return done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        const done = (v: boolean) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(v);
        };
        waiters.add(check);
        check();
      }),
  };
}

describe('exactly once under SIGKILL', () => {
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await deletePrefix(client, prefix);
    await deleteTopic(topic);
    await deleteTopic(`${topic}.dlq`);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`keeps every event exactly once across ${KILLS} kills mid-batch and mid-upload`, async () => {
    await createTopic(topic, PARTITIONS);
    const ids: string[] = [];
    // Event time runs forward through an hour boundary halfway through, so files are also cut at the hour.
    const boundary = hourStartOf(Date.now());
    const start = boundary - (WAVES * PER_WAVE * 30) / 2;
    let wave = 0;
    const produceWave = async () => {
      const records = Array.from({ length: PER_WAVE }, (_, i) => {
        const sessionId = `sess_crash_${(wave * PER_WAVE + i) % 97}`;
        const e = makeEvent({ session_id: sessionId, timestamp: new Date(start + (wave * PER_WAVE + i) * 30).toISOString() });
        ids.push(e.event_id);
        return { key: sessionId, value: JSON.stringify(e) };
      });
      wave += 1;
      await produceRaw(topic, records);
    };
    await produceWave();
    // The producer keeps adding waves while the archiver is killed again and again.
    const producing = (async () => {
      while (wave < WAVES) {
        await sleep(2500);
        await produceWave();
      }
    })();

    let midUpload = 0;
    for (let k = 0; k < KILLS; k++) {
      const run = startArchiver();
      if (k % 2 === 0) {
        // Mid-upload: right after an upload starts, or after it finished but before its commit.
        const phase = k % 4 === 0 ? 'uploading' : 'uploaded';
        if (await run.waitFor((l) => l.msg === phase, 15_000)) midUpload += 1;
        await sleep(Math.floor(Math.random() * 15));
      } else {
        // Mid-batch: at a random moment after the partitions were assigned.
        await run.waitFor((l) => l.msg === 'partitions assigned', 15_000);
        await sleep(300 + Math.floor(Math.random() * 2500));
      }
      run.child.kill('SIGKILL');
      await run.exited;
    }
    expect(midUpload).toBeGreaterThan(0);
    await producing;

    const final = startArchiver();
    const high = await highWatermarks(topic, PARTITIONS);
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline && ![...high].every(([p, h]) => (committed[p] ?? 0) >= h)) await sleep(200);
    if (process.env.ARCHIVER_TEST_DEBUG) writeFileSync(process.env.ARCHIVER_TEST_DEBUG, final.lines.map((l) => JSON.stringify(l)).join('\n'));
    expect(Object.fromEntries(high)).toEqual(Object.fromEntries([...high].map(([p]) => [p, committed[p] ?? 0])));
    final.child.kill('SIGTERM');
    expect(await final.exited).toBe(0);

    const got = await downloadPrefix(client, prefix);
    dir = got.dir;
    const glob = `'${dir}/**/*.parquet'`;
    const dupes = await duck(`SELECT event_id, count(*)::INT AS n FROM read_parquet(${glob}) GROUP BY event_id HAVING count(*) > 1 LIMIT 5`);
    expect(dupes).toEqual([]);
    const archived = (await duck(`SELECT event_id FROM read_parquet(${glob})`)).map((r) => String(r.event_id));
    expect(archived.length).toBe(WAVES * PER_WAVE);
    const missing = ids.filter((id) => !new Set(archived).has(id));
    expect(missing).toEqual([]);
  }, 150_000);
});
