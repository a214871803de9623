import { describe, expect, it } from 'vitest';
import { LOG_LEVELS, type Logger } from '@agenttrace/common';
import { resolveReplicatorOptions, type ReplicatorOptions } from '../src/index.js';

const base: ReplicatorOptions = {
  source: { brokers: ['127.0.0.1:1'] },
  target: { brokers: ['127.0.0.1:2'] },
  sourceAlias: 'us-east-1',
  targetAlias: 'eu-west-1',
  topics: ['agent-events'],
};

function recorder(lines: unknown[][]): Logger {
  return Object.fromEntries(LOG_LEVELS.map((l) => [l, (...args: unknown[]) => lines.push([l, ...args])])) as unknown as Logger;
}

describe('options.logger', () => {
  it('a pino-compatible logger gets the same lines as the log hook, and both work together', () => {
    const lines: unknown[][] = [];
    const hooked: unknown[][] = [];
    const o = resolveReplicatorOptions({ ...base, logger: recorder(lines), log: (...a) => hooked.push(a) });
    o.log('info', 'mirroring', { partitions: 3 });
    expect(lines).toEqual([['info', { partitions: 3 }, 'mirroring']]);
    expect(hooked).toEqual([['info', 'mirroring', { partitions: 3 }]]);
  });

  it('rejects an object that is not a logger, naming the option', () => {
    expect(() => resolveReplicatorOptions({ ...base, logger: { info() {} } as never })).toThrow(/options\.logger/);
  });
});

describe('options.debug (deprecated) and the logger level', () => {
  it('per-transaction debug lines follow the logger level; an explicit debug still wins', () => {
    const lines: unknown[][] = [];
    const at = (level: string): Logger => ({ ...recorder(lines), level });
    expect(resolveReplicatorOptions({ ...base, logger: at('debug') }).debug).toBe(true);
    expect(resolveReplicatorOptions({ ...base, logger: at('info') }).debug).toBe(false);
    expect(resolveReplicatorOptions({ ...base, logger: { ...recorder(lines), isLevelEnabled: (l: string) => l !== 'trace' } }).debug).toBe(true);
    expect(resolveReplicatorOptions({ ...base, logger: at('debug'), debug: false }).debug).toBe(false);
    expect(resolveReplicatorOptions({ ...base, debug: true }).debug).toBe(true);
    // No level to go by (a plain logger, the log hook, nothing): off, as before the logger existed.
    expect(resolveReplicatorOptions({ ...base, logger: recorder(lines) }).debug).toBe(false);
    expect(resolveReplicatorOptions(base).debug).toBe(false);
    expect(() => resolveReplicatorOptions({ ...base, debug: 'yes' as never })).toThrow(/options\.debug must be true or false/);
  });
});
