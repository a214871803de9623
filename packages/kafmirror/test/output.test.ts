/**
 * No output is ever cut (#13). kafmirror has no command whose output is both large and the same
 * from run to run: its --help is compared byte for byte (a few KB, less than a pipe holds), and
 * the one large output, replicate's JSON progress (one line per --progress-interval, here every
 * millisecond over a 60-partition topic), is checked for completeness: through a slow reader
 * every line is whole JSON and the run still ends with exit 0 after SIGTERM. A reader that stops
 * after one line (`| head -1`) stops replicate as SIGTERM would: exit 0, nothing on stderr.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runHeadOne, runSlowReader, runToFile } from '../../../test-support/cli-output.js';
import { createTopic, deleteTopic, stack, uniqueName } from '../../../test-support/stack.js';
import { CLI } from './helpers.js';

const LIVE = stack.brokers.join(',');
const PARTITIONS = 60;
const topics: string[] = [];

/** A source topic on the shared cluster, mirrored to a prefixed copy on the same cluster. */
async function mirrorArgs(quiet: boolean): Promise<string[]> {
  const topic = uniqueName('km-output');
  const alias = uniqueName('kmo').replace(/[^a-z0-9]/gi, '');
  topics.push(topic, `${alias}.${topic}`, `kafmirror.offsets.${alias}`, `kafmirror.checkpoints.${alias}`);
  await createTopic(topic, PARTITIONS);
  return ['replicate', '--source', LIVE, '--source-alias', alias, '--target', LIVE, '--target-alias', `${alias}dr`, '--naming', 'prefix', '--topics', topic, '--json', ...(quiet ? ['--quiet'] : []), '--progress-interval', '1ms'];
}

afterAll(async () => {
  for (const t of topics) await deleteTopic(t);
}, 60_000);

describe('kafmirror output through a pipe (built binary)', () => {
  it.each([[['--help']], [['replicate', '--help']], [['failover', '--help']]])('%j: a slow reader gets the same bytes as a file', async (args) => {
    const file = await runToFile(CLI, args);
    expect(file.code).toBe(0);
    expect(file.stdout.toString()).toContain('Exit codes');
    const piped = await runSlowReader(CLI, args, 500);
    expect(piped.code).toBe(0);
    expect(piped.stderr).toBe('');
    expect(piped.stdout.equals(file.stdout)).toBe(true);
  });

  it('replicate --json progress through a slow reader: every line whole, exit 0 after SIGTERM', async () => {
    const args = await mirrorArgs(false);
    let signalled = false;
    // SIGTERM comes 2 s after mirroring started; the reader takes nothing until kafmirror has
    // logged its last line ("stopped"), so kafmirror ends while megabytes of progress still
    // wait for the reader.
    const r = await runSlowReader(CLI, args, 45_000, process.env, 60_000, {
      onStderr: (stderr, child) => {
        if (signalled || !/mirroring/.test(stderr)) return;
        signalled = true;
        setTimeout(() => child.kill('SIGTERM'), 2_000);
      },
      resumeOn: /"msg":"stopped"/,
    });
    expect(signalled).toBe(true);
    expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(r.stderr).toContain('stopped');
    expect(r.code).toBe(0);
    const text = r.stdout.toString();
    expect(r.stdout.length).toBeGreaterThan(1024 * 1024);
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ type: 'progress' });
  }, 90_000);

  it('replicate --json | head -1 stops as SIGTERM would: exit 0, nothing on stderr', async () => {
    const args = await mirrorArgs(true);
    const r = await runHeadOne(CLI, args, process.env, 60_000);
    expect(JSON.parse(r.firstLine)).toMatchObject({ type: 'progress' });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
  }, 90_000);
});
