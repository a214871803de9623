import { describe, expect, it } from 'vitest';
import { LOG_LEVELS, OptionsError, combineHooks, hookToLogger, loggerFromHook, loggerLevelEnabled, validateLogger, type Logger } from '../src/index.js';

/** A logger recording its calls the way pino's methods are called: (fields, msg) or (msg). */
function recorder(): { logger: Logger; lines: unknown[][] } {
  const lines: unknown[][] = [];
  const logger = Object.fromEntries(
    LOG_LEVELS.map((l) => [
      l,
      function (this: unknown, ...args: unknown[]) {
        // pino's methods read `this`: the hook must call them as methods.
        expect(this).toBe(logger);
        lines.push([l, ...args]);
      },
    ]),
  ) as unknown as Logger;
  return { logger, lines };
}

describe('logger', () => {
  it('hookToLogger passes (fields, msg) at the same level, and a bare message when there are no fields', () => {
    const { logger, lines } = recorder();
    const hook = hookToLogger(logger);
    hook('warn', 'upload failed; retrying', { attempt: 2 });
    hook('info', 'archiver started');
    expect(lines).toEqual([
      ['warn', { attempt: 2 }, 'upload failed; retrying'],
      ['info', 'archiver started'],
    ]);
  });

  it('validateLogger names the option and the missing levels', () => {
    expect(() => validateLogger({ info() {} }, 'options.logger')).toThrow(OptionsError);
    expect(() => validateLogger({ info() {} }, 'options.logger')).toThrow(/options\.logger.*lacks trace, debug, warn, error, fatal/);
    expect(() => validateLogger(undefined, 'options.logger')).toThrow(/options\.logger/);
    const { logger } = recorder();
    expect(validateLogger(logger, 'options.logger')).toBe(logger);
  });

  it('combineHooks sends each line to every hook given', () => {
    const seen: string[] = [];
    const both = combineHooks((l, m) => seen.push(`a:${l}:${m}`), undefined, (l, m) => seen.push(`b:${l}:${m}`))!;
    both('error', 'x');
    expect(seen).toEqual(['a:error:x', 'b:error:x']);
    expect(combineHooks(undefined)).toBeUndefined();
  });
});

describe('loggerFromHook', () => {
  it('calls the hook with the level, message and fields of pino-style calls; trace as debug, fatal as error', () => {
    const seen: unknown[][] = [];
    const logger = loggerFromHook((level, message, fields) => seen.push([level, message, fields]));
    logger.warn({ source: 'redis' }, 'switching to kafka');
    logger.info('plain');
    logger.trace('fine');
    logger.fatal({ code: 'X' }, 'gone');
    expect(seen).toEqual([
      ['warn', 'switching to kafka', { source: 'redis' }],
      ['info', 'plain', undefined],
      ['debug', 'fine', undefined],
      ['error', 'gone', { code: 'X' }],
    ]);
    expect(validateLogger(logger, 'options.logger')).toBe(logger);
  });

  it('drops lines below its level and says so to callers that ask', () => {
    const seen: string[] = [];
    const logger = loggerFromHook((_l, m) => seen.push(m), { level: 'info' });
    logger.debug('detail');
    logger.info('kept');
    expect(seen).toEqual(['kept']);
    expect(loggerLevelEnabled(logger, 'debug')).toBe(false);
    expect(loggerLevelEnabled(logger, 'warn')).toBe(true);
    expect(() => loggerFromHook(() => undefined, { level: 'loud' as 'info' })).toThrow(OptionsError);
  });
});

describe('loggerLevelEnabled', () => {
  it("asks pino's isLevelEnabled, else reads its level, else does not know", () => {
    const { logger } = recorder();
    expect(loggerLevelEnabled(logger, 'debug')).toBeUndefined();
    expect(loggerLevelEnabled(undefined, 'debug')).toBeUndefined();
    expect(loggerLevelEnabled({ ...logger, level: 'debug' }, 'debug')).toBe(true);
    expect(loggerLevelEnabled({ ...logger, level: 'info' }, 'debug')).toBe(false);
    expect(loggerLevelEnabled({ ...logger, level: 'silent' }, 'fatal')).toBe(false);
    expect(loggerLevelEnabled({ ...logger, level: 'info', isLevelEnabled: (l) => l === 'debug' }, 'debug')).toBe(true);
  });
});
