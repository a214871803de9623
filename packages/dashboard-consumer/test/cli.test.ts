import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { repoRoot, runNode, stack } from '../../../test-support/stack.js';

const bin = join(repoRoot, 'packages/dashboard-consumer/dist/cli.js');
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runNode(bin, args, { env: { ...process.env, ...env }, timeoutMs: 30_000 });

describe('agenttrace-dashboard CLI', () => {
  it('--help shows examples and exit codes', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('Exit codes:');
    expect(r.stdout).toContain('--redis-prefix');
  });

  it('rejects a bad flag value with exit 2 and no stack trace', async () => {
    const r = await run(['--metrics-port', 'seventy']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--metrics-port/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const bad = await run(['--redis-url', 'http://x', '--metrics-port', 'off']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('options.redisUrl');
  });

  it('exits 4 with a hint when Redis is unreachable, without printing the password', async () => {
    const r = await run(['--redis-url', 'redis://user:s3cret@127.0.0.1:21381', '--metrics-port', 'off', '--start-timeout', '1', '--brokers', stack.brokers.join(',')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/cannot reach Redis/);
    expect(r.stderr + r.stdout).not.toContain('s3cret');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 9 when the metrics port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = await run(['--metrics-port', String(port), '--start-timeout', '2', '--brokers', stack.brokers.join(',')]);
      expect(r.code).toBe(9);
      expect(r.stderr).toContain('--metrics-port');
    } finally {
      blocker.close();
    }
  });
});
