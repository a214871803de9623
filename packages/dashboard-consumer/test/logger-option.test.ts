import { describe, expect, it } from 'vitest';
import { LOG_LEVELS, type Logger } from '@agenttrace/common';
import { resolveDashboardOptions, type LogEntry } from '../src/index.js';

const env = { AGENTTRACE_BROKERS: '127.0.0.1:9092' };

function recorder(lines: unknown[][]): Logger {
  return Object.fromEntries(LOG_LEVELS.map((l) => [l, (...args: unknown[]) => lines.push([l, ...args])])) as unknown as Logger;
}

describe('options.logger', () => {
  it('a pino-compatible logger gets (fields, msg) for every onLog entry, and onLog still gets the entry', () => {
    const lines: unknown[][] = [];
    const entries: LogEntry[] = [];
    const o = resolveDashboardOptions({ logger: recorder(lines), onLog: (e) => entries.push(e) }, env);
    o.onLog!({ level: 'info', message: 'consuming', metrics: 'http://127.0.0.1:1' });
    o.onLog!({ level: 'error', message: 'batch failed' });
    expect(lines).toEqual([
      ['info', { metrics: 'http://127.0.0.1:1' }, 'consuming'],
      ['error', 'batch failed'],
    ]);
    expect(entries.map((e) => e.message)).toEqual(['consuming', 'batch failed']);
  });

  it('rejects an object that is not a logger, naming the option', () => {
    expect(() => resolveDashboardOptions({ logger: { info() {} } as never }, env)).toThrow(/options\.logger/);
  });
});
