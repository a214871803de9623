import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../../test-support/stack.js';

const bin = join(repoRoot, 'packages/archiver/dist/cli.js');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 });

describe('agenttrace-archiver CLI', () => {
  it('prints help with examples and exit codes', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('Exit codes:');
  });

  it('exits 2 with a message naming the problem for bad flags and settings', () => {
    const bad = run(['--roll-rows', 'many']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--roll-rows');
    const invalid = run(['--roll-age', '10ms']);
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toContain('options.rollAgeMs');
    expect(invalid.stderr).not.toMatch(/\n\s+at /);
    const config = run(['--config', '/nonexistent/archiver.json']);
    expect(config.status).toBe(2);
    expect(config.stderr).toContain('no such file');
  });
});
