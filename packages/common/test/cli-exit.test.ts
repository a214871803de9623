/**
 * Output that cannot be written is not a success (#13): every command with stdout on a full
 * device says so in one line and exits 1 (kdiff 2), instead of 0 with its output lost.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../../test-support/stack.js';

const TOOLS: ReadonlyArray<[string, string, number]> = [
  ['kshark', 'packages/kshark/dist/cli.js', 1],
  ['kdiff', 'packages/kdiff/dist/cli.js', 2],
  ['kafmirror', 'packages/kafmirror/dist/cli.js', 1],
  ['agenttrace-dashboard', 'packages/dashboard-consumer/dist/cli.js', 1],
  ['agenttrace-archiver', 'packages/archiver/dist/cli.js', 1],
];

async function helpIntoDevFull(script: string): Promise<{ code: number | null; stderr: string }> {
  const fd = openSync('/dev/full', 'w');
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(repoRoot, script), '--help'], { stdio: ['ignore', fd, 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(!existsSync('/dev/full'))('stdout on a full device', () => {
  it.each(TOOLS)('%s --help > /dev/full: one line on stderr, exit 1 (kdiff 2)', async (name, script, code) => {
    const r = await helpIntoDevFull(script);
    expect(r.stderr).toBe(`${name}: cannot write the output: ENOSPC\n`);
    expect(r.code).toBe(code);
  });
});
