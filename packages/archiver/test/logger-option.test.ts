import { describe, expect, it } from 'vitest';
import { LOG_LEVELS, type Logger } from '@agenttrace/common';
import { resolveArchiverOptions } from '../src/index.js';

const env = { AGENTTRACE_BROKERS: '127.0.0.1:9092' };

function recorder(lines: unknown[][]): Logger {
  return Object.fromEntries(LOG_LEVELS.map((l) => [l, (...args: unknown[]) => lines.push([l, ...args])])) as unknown as Logger;
}

describe('options.logger', () => {
  it('a pino-compatible logger gets the same lines as the log hook, and both work together', () => {
    const lines: unknown[][] = [];
    const hooked: unknown[][] = [];
    const o = resolveArchiverOptions({ logger: recorder(lines), log: (...a) => hooked.push(a) }, env);
    o.log('warn', 'upload failed; retrying', { attempt: 2 });
    expect(lines).toEqual([['warn', { attempt: 2 }, 'upload failed; retrying']]);
    expect(hooked).toEqual([['warn', 'upload failed; retrying', { attempt: 2 }]]);
  });

  it('rejects an object that is not a logger, naming the option', () => {
    expect(() => resolveArchiverOptions({ logger: { info() {} } as never }, env)).toThrow(/options\.logger/);
  });
});
