import { OptionsError } from './errors.js';

/** pino's levels, lowest first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One level's method, called as pino's are: `(fields, msg)` or `(msg)`. */
export interface LogMethod {
  (fields: Record<string, unknown>, msg?: string): void;
  (msg: string): void;
}

/**
 * The one logger interface of the project's libraries and services, shaped like pino's (and
 * bunyan's, and OpenTelemetry's diag logger in spirit): a pino instance can be passed as it is.
 * Fields never hold credentials.
 */
export type Logger = Record<LogLevel, LogMethod> & {
  /** pino's: whether lines of this level are written. Callers skip costly debug details when it says no. */
  isLevelEnabled?(level: string): boolean;
  /** pino's: the lowest level written. */
  level?: string;
};

/** The hook shape the services took before the logger existed: a level, a message and fields. */
export type LogHook = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/** Checks that `value` has every level method; `where` names the option in the error. */
export function validateLogger(value: unknown, where: string): Logger {
  const v = value as Partial<Record<LogLevel, unknown>> | null;
  if (typeof v !== 'object' || v === null) throw new OptionsError(where, 'must be a logger object with trace, debug, info, warn, error and fatal methods (pino-compatible)');
  const missing = LOG_LEVELS.filter((l) => typeof v[l] !== 'function');
  if (missing.length > 0) throw new OptionsError(where, `must be a pino-compatible logger; it lacks ${missing.join(', ')}`);
  return v as Logger;
}

/**
 * A LogHook that writes to `logger`: the services keep calling their hook, and a logger given as
 * option receives `(fields, message)` at the same level. `trace` and `fatal` are not used by the
 * hook shape (debug and error are the ends).
 */
export function hookToLogger(logger: Logger): LogHook {
  return (level, message, fields) => {
    // Called as a method: pino's methods use `this`.
    if (fields && Object.keys(fields).length > 0) logger[level](fields, message);
    else logger[level](message);
  };
}

/** Both, when both are given: a logger option and an older hook option each see every line. */
export function combineHooks(...hooks: Array<LogHook | undefined>): LogHook | undefined {
  const present = hooks.filter((h): h is LogHook => h !== undefined);
  if (present.length === 0) return undefined;
  if (present.length === 1) return present[0];
  return (level, message, fields) => {
    for (const h of present) h(level, message, fields);
  };
}

/**
 * Whether `logger` writes lines of `level`: what its `isLevelEnabled` (pino) or `level` says, or
 * undefined when it says nothing (a plain object with the six methods).
 */
export function loggerLevelEnabled(logger: Logger | undefined, level: LogLevel): boolean | undefined {
  if (logger === undefined) return undefined;
  if (typeof logger.isLevelEnabled === 'function') return logger.isLevelEnabled(level);
  const min = typeof logger.level === 'string' ? LOG_LEVELS.indexOf(logger.level as LogLevel) : -1;
  // pino's "silent" (or any name it does not know) writes nothing of these six.
  if (typeof logger.level === 'string') return min >= 0 && LOG_LEVELS.indexOf(level) >= min;
  return undefined;
}

const HOOK_LEVEL: Record<LogLevel, 'debug' | 'info' | 'warn' | 'error'> = { trace: 'debug', debug: 'debug', info: 'info', warn: 'warn', error: 'error', fatal: 'error' };

/**
 * A Logger that hands every line to a `(level, message, fields)` hook: how a command or an
 * application that prints (or sends) lines its own way gives a library its logger. trace is
 * passed as debug and fatal as error, the ends of the hook shape. `level` (default trace: the hook
 * filters) is what the logger reports to callers that ask before building costly debug lines.
 */
export function loggerFromHook(hook: LogHook, options: { level?: LogLevel } = {}): Logger {
  const level = options.level ?? 'trace';
  if (!LOG_LEVELS.includes(level)) throw new OptionsError('options.level', `must be one of ${LOG_LEVELS.join(', ')}, got "${String(level)}"`);
  const min = LOG_LEVELS.indexOf(level);
  const method = (l: LogLevel): LogMethod =>
    ((first: Record<string, unknown> | string, msg?: string) => {
      if (LOG_LEVELS.indexOf(l) < min) return;
      if (typeof first === 'string') hook(HOOK_LEVEL[l], first);
      else hook(HOOK_LEVEL[l], msg ?? '', first);
    }) as LogMethod;
  const logger = Object.fromEntries(LOG_LEVELS.map((l) => [l, method(l)])) as Record<LogLevel, LogMethod>;
  return { ...logger, level, isLevelEnabled: (l: string) => LOG_LEVELS.indexOf(l as LogLevel) >= min };
}
