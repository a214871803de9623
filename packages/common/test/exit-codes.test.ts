/**
 * One exit-code table (#13): docs/cli.md shows CLI_EXIT_TABLE as it is, each tool's --help prints
 * its column, and errors of every package are classified the same way.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentTraceError, CLI_EXIT, CLI_EXIT_TABLE, exitCodeForError, exitCodesHelp, kdiffExitCode, type CliTool } from '../src/index.js';
import { repoRoot, runNode } from '../../../test-support/stack.js';

const TOOLS: ReadonlyArray<[CliTool, string]> = [
  ['kshark', 'packages/kshark/dist/cli.js'],
  ['kdiff', 'packages/kdiff/dist/cli.js'],
  ['kafmirror', 'packages/kafmirror/dist/cli.js'],
  ['agenttrace-dashboard', 'packages/dashboard-consumer/dist/cli.js'],
  ['agenttrace-archiver', 'packages/archiver/dist/cli.js'],
];

describe('exit-code table', () => {
  it('docs/cli.md shows exactly CLI_EXIT_TABLE', () => {
    const doc = readFileSync(join(repoRoot, 'docs', 'cli.md'), 'utf8');
    const lines = doc.split('\n');
    const header = lines.find((l) => l.startsWith('| code | kind |'))!;
    const columns = header.split('|').slice(3, -1).map((c) => c.trim());
    expect(columns).toEqual(TOOLS.map(([t]) => t));
    const rows = lines.filter((l) => /^\| \d+ \|/.test(l)).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    expect(rows.map((r) => Number(r[0]))).toEqual(CLI_EXIT_TABLE.map((r) => r.code));
    for (const [i, row] of CLI_EXIT_TABLE.entries()) {
      const cells = rows[i]!;
      expect(cells[1], `kind of ${row.code}`).toBe(row.kind);
      TOOLS.forEach(([tool], j) => expect(cells[2 + j], `${tool} ${row.code}`).toBe(row.tools[tool] ?? '—'));
    }
  });

  it('codes are unique and kdiff keeps diff(1)\'s 0 / 1 / 2', () => {
    const codes = Object.values(CLI_EXIT);
    expect(new Set(codes).size).toBe(codes.length);
    expect([CLI_EXIT.OK, CLI_EXIT.FAILURE, CLI_EXIT.USAGE]).toEqual([0, 1, 2]);
    for (const c of codes.filter((c) => c >= 2)) expect(kdiffExitCode(c)).toBe(2);
    expect(kdiffExitCode(0)).toBe(0);
  });

  it('classifies errors by code, following the cause chain', () => {
    expect(exitCodeForError(new AgentTraceError('CONFIG_MALFORMED', 'x'))).toBe(CLI_EXIT.USAGE);
    expect(exitCodeForError(new AgentTraceError('SESSION_NOT_FOUND', 'x'))).toBe(CLI_EXIT.NOT_FOUND);
    const wrapped = new AgentTraceError('CONSUMER_FAILED', 'could not start', { cause: new AgentTraceError('KAFKA_UNAVAILABLE', 'down') });
    expect(exitCodeForError(wrapped)).toBe(CLI_EXIT.UNAVAILABLE);
    expect(exitCodeForError(new AgentTraceError('X', 'y', { cause: Object.assign(new Error('listen'), { code: 'EADDRINUSE' }) }))).toBe(CLI_EXIT.PORT_IN_USE);
    expect(exitCodeForError(new AgentTraceError('KAFKA_AUTH_FAILED', 'no'))).toBe(CLI_EXIT.AUTH_FAILED);
    expect(exitCodeForError(new Error('boom'))).toBe(CLI_EXIT.FAILURE);
    expect(exitCodeForError('not an error')).toBe(CLI_EXIT.FAILURE);
  });

  it.each(TOOLS)('%s --help prints its column of the table', async (tool, script) => {
    const r = await runNode(join(repoRoot, script), ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(exitCodesHelp(tool));
    for (const row of CLI_EXIT_TABLE) {
      const text = row.tools[tool];
      if (text !== undefined && !text.startsWith('(')) expect(r.stdout).toContain(`${String(row.code).padStart(3)}  ${text}`);
    }
  });
});
