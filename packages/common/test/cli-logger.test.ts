/** The one logger of the long-running commands (#15): levels, JSON lines, terminal-safe text. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeCliLogger, makeCliLoggerObject } from '../src/index.js';

function capture(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('makeCliLogger', () => {
  it('prints info and above by default, warnings only with quiet, debug with verbose', () => {
    const lines = capture();
    for (const flags of [{}, { quiet: true }, { verbose: true }]) {
      const log = makeCliLogger(flags);
      log('debug', 'd');
      log('info', 'i');
      log('warn', 'w');
    }
    const levels = lines.map((l) => l.split(' ')[1]);
    expect(levels).toEqual(['info', 'warn', 'warn', 'debug', 'info', 'warn']);
  });

  it('writes JSON lines with the fields, or text with undefined fields left out and escapes neutralized', () => {
    const lines = capture();
    makeCliLogger({ json: true })('info', 'started', { topic: 't', n: 2 });
    makeCliLogger({})('warn', 'bad \u001b[2J topic', { topic: 'x\u0007', skipped: undefined, n: 3 });
    const doc = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(doc).toMatchObject({ level: 'info', msg: 'started', topic: 't', n: 2 });
    expect(lines[1]).toMatch(/^\S+ warn  bad \\e\[2J topic topic=x\\x07 n=3\n$/);
  });

  it('calls beforeWrite before each printed line only', () => {
    capture();
    const before = vi.fn();
    const log = makeCliLogger({ quiet: true }, before);
    log('info', 'hidden');
    log('error', 'shown');
    expect(before).toHaveBeenCalledTimes(1);
  });
});

describe('makeCliLoggerObject', () => {
  it('writes the same lines as a Logger whose level follows --quiet and --verbose', () => {
    const lines = capture();
    const quiet = makeCliLoggerObject({ quiet: true });
    quiet.info('hidden');
    quiet.warn({ topic: 't' }, 'shown');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ warn  shown topic=t\n$/);
    expect(quiet.isLevelEnabled?.('info')).toBe(false);
    expect(makeCliLoggerObject({ verbose: true }).isLevelEnabled?.('debug')).toBe(true);
    expect(makeCliLoggerObject({}).isLevelEnabled?.('debug')).toBe(false);
  });
});
