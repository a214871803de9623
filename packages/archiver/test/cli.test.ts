import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { repoRoot, runNode } from '../../../test-support/stack.js';

const bin = join(repoRoot, 'packages/archiver/dist/cli.js');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runNode(bin, args, { env: { ...process.env, ...env }, timeoutMs: 30_000 });

describe('agenttrace-archiver CLI', () => {
  it('prints help with examples and exit codes', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('Exit codes:');
  });

  it('exits 2 with a message naming the problem for bad flags and settings', async () => {
    const bad = await run(['--roll-rows', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--roll-rows');
    const invalid = await run(['--roll-age', '10ms']);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('options.rollAgeMs');
    expect(invalid.stderr).not.toMatch(/\n\s+at /);
    const config = await run(['--config', '/nonexistent/archiver.json']);
    expect(config.code).toBe(2);
    expect(config.stderr).toContain('no such file');
  });

  it('exits 4 (unreachable, as in every agenttrace command) naming Kafka when --start-timeout runs out', async () => {
    const r = await run(['--brokers', '127.0.0.1:1', '--start-timeout', '2s', '--topic', 'archiver-cli-unreachable']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/could not start the archiver on Kafka at 127\.0\.0\.1:1/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 40_000);
});
