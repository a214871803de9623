/**
 * The command-line tools under bad arguments, unknown sessions, unreachable servers and
 * malformed config: a clear message and a documented non-zero exit, never a stack trace; and
 * credentials from the environment never appear in output or in --help.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, runNode, stack, uniqueName } from '../test-support/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'agenttrace-cli-'));
const badConfig = join(dir, 'bad.json');
writeFileSync(badConfig, '{ "brokers": ["127.0.0.1:9092"], ');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = `s3cr3t-${uniqueName('pw')}`;
/** Credentials a user might have in the environment; none may ever be printed. */
const secretEnv = {
  AGENTTRACE_KAFKA_SASL_USERNAME: 'agenttrace',
  AGENTTRACE_KAFKA_SASL_PASSWORD: SECRET,
  AGENTTRACE_SOURCE_KAFKA_SASL_PASSWORD: SECRET,
  AGENTTRACE_TARGET_KAFKA_SASL_PASSWORD: SECRET,
  AWS_SECRET_ACCESS_KEY: SECRET,
};

interface Run {
  code: number | null;
  out: string;
}

async function run(cli: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await runNode(join(repoRoot, `packages/${cli}/dist/cli.js`), args, {
    env: { ...process.env, NO_COLOR: '1', AGENTTRACE_BROKERS: stack.brokers.join(','), ...env },
  });
  return { code: r.code, out: `${r.stdout}\n${r.stderr}` };
}

/** A message, a non-zero exit, and no JavaScript stack trace. */
function expectCleanFailure(r: Run, code: number, message: RegExp): void {
  expect(r.out).toMatch(message);
  expect(r.out).not.toMatch(/\n\s+at .+:\d+:\d+/);
  expect(r.code).toBe(code);
}

describe('kshark', () => {
  it('rejects an unknown option and a bad time expression (exit 2)', async () => {
    expectCleanFailure(await run('kshark', ['replay', 'sess_x', '--no-such-flag']), 2, /unknown option/i);
    expectCleanFailure(await run('kshark', ['replay', 'sess_x', '--from', 'last tuesday']), 2, /last tuesday/);
  });

  it('says an unknown session was not found (exit 3)', async () => {
    expectCleanFailure(await run('kshark', ['replay', `sess_${uniqueName('nobody')}`, '--source', 'kafka', '--topic', uniqueName('empty')]), 3, /not found|no events|does not exist|unknown topic/i);
  });

  it('names the unreachable server (exit 4)', async () => {
    expectCleanFailure(await run('kshark', ['replay', 'sess_x', '--source', 'kafka', '--brokers', '127.0.0.1:1']), 4, /127\.0\.0\.1:1/);
    expectCleanFailure(await run('kshark', ['replay', 'sess_x', '--source', 'redis', '--redis-url', 'redis://127.0.0.1:1']), 4, /127\.0\.0\.1:1/);
  });

  it('reports a malformed config file (exit 2)', async () => {
    expectCleanFailure(await run('kshark', ['replay', 'sess_x', '--config', badConfig]), 2, /bad\.json/);
  });

  it('never prints credentials, in errors or in --help', async () => {
    const runs = [
      await run('kshark', ['replay', 'sess_x', '--source', 'kafka', '--brokers', '127.0.0.1:1'], secretEnv),
      await run('kshark', ['replay', 'sess_x', '--source', 'redis', '--redis-url', `redis://user:${SECRET}@127.0.0.1:1`], secretEnv),
      await run('kshark', ['--help'], secretEnv),
      await run('kshark', ['replay', '--help'], secretEnv),
    ];
    for (const r of runs) expect(r.out).not.toContain(SECRET);
  });
});

describe('kdiff', () => {
  it('rejects bad arguments (exit 2)', async () => {
    expectCleanFailure(await run('kdiff', ['compare']), 2, /missing|session/i);
    expectCleanFailure(await run('kdiff', ['compare', 'a', 'b', '--no-such-flag']), 2, /unknown option/i);
  });

  it('says an unknown session was not found (exit 2)', async () => {
    expectCleanFailure(await run('kdiff', ['compare', `sess_${uniqueName('a')}`, `sess_${uniqueName('b')}`, '--source', 'kafka', '--topic', uniqueName('empty')]), 2, /not found|no events|does not exist|unknown topic/i);
  });

  it('names the unreachable server and reports a malformed config (exit 2)', async () => {
    expectCleanFailure(await run('kdiff', ['compare', 'a', 'b', '--source', 'kafka', '--brokers', '127.0.0.1:1']), 2, /127\.0\.0\.1:1/);
    expectCleanFailure(await run('kdiff', ['compare', 'a', 'b', '--config', badConfig]), 2, /bad\.json/);
  });

  it('never prints credentials, in errors or in --help', async () => {
    const runs = [
      await run('kdiff', ['compare', 'a', 'b', '--source', 'kafka', '--brokers', '127.0.0.1:1'], secretEnv),
      await run('kdiff', ['compare', 'a', 'b', '--source', 'redis', '--redis-url', `redis://user:${SECRET}@127.0.0.1:1`], secretEnv),
      await run('kdiff', ['--help'], secretEnv),
      await run('kdiff', ['compare', '--help'], secretEnv),
    ];
    for (const r of runs) expect(r.out).not.toContain(SECRET);
  });
});

describe('kafmirror', () => {
  const main = stack.brokers.join(',');

  it('rejects bad arguments and a malformed config (exit 2)', async () => {
    expectCleanFailure(await run('kafmirror', ['replicate', '--target', main, '--topics', 'x']), 2, /source/i);
    expectCleanFailure(await run('kafmirror', ['replicate', '--no-such-flag']), 2, /unknown option/i);
    expectCleanFailure(await run('kafmirror', ['replicate', '--source', main, '--target', main, '--topics', 'x', '--config', badConfig]), 2, /bad\.json/);
  });

  it('names the unreachable source cluster (exit 4) and the missing topic (exit 3)', async () => {
    expectCleanFailure(await run('kafmirror', ['replicate', '--source', '127.0.0.1:1', '--target', main, '--topics', 'x']), 4, /source.*127\.0\.0\.1:1/i);
    expectCleanFailure(await run('kafmirror', ['replicate', '--source', main, '--target', main, '--naming', 'prefix', '--topics', uniqueName('missing')]), 3, /does not exist|missing|not found/i);
  });

  it('never prints credentials, in errors or in --help', async () => {
    const runs = [
      await run('kafmirror', ['replicate', '--source', '127.0.0.1:1', '--target', '127.0.0.1:2', '--topics', 'x'], secretEnv),
      await run('kafmirror', ['--help'], secretEnv),
      await run('kafmirror', ['replicate', '--help'], secretEnv),
    ];
    for (const r of runs) expect(r.out).not.toContain(SECRET);
  });
});
