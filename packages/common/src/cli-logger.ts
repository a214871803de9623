import { loggerFromHook, type Logger } from './logger.js';
import { sanitizeForTerminal } from './terminal.js';

export type CliLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The log hook the services and kafmirror take: a level, a message and structured fields. */
export type CliLogFn = (level: CliLogLevel, message: string, fields?: Record<string, unknown>) => void;

export interface CliLoggerFlags {
  /** One JSON object per line (time, level, msg, fields). */
  json?: boolean;
  /** Warnings and errors only. */
  quiet?: boolean;
  /** Also debug lines. */
  verbose?: boolean;
}

const LEVELS: Record<CliLogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * The logger of the long-running commands (archiver, kafmirror replicate), on stderr so stdout
 * stays for results and progress. Text lines go through sanitizeForTerminal: messages and fields
 * can hold topic names and broker errors. Fields whose value is undefined are left out.
 * `beforeWrite` runs before each line (kafmirror clears its updating progress line).
 */
export function makeCliLogger(flags: CliLoggerFlags, beforeWrite?: () => void): CliLogFn {
  const min = flags.quiet ? LEVELS.warn : flags.verbose ? LEVELS.debug : LEVELS.info;
  return (level, message, fields = {}) => {
    if (LEVELS[level] < min) return;
    beforeWrite?.();
    if (flags.json) {
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields })}\n`);
      return;
    }
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${sanitizeForTerminal(`${message}${extra ? ` ${extra}` : ''}`, { singleLine: true })}\n`);
  };
}

/**
 * The same lines as makeCliLogger, as common's Logger: what a command hands to a library's
 * `logger` option. Its level follows --quiet / --verbose, so a library asking
 * `isLevelEnabled('debug')` learns whether --verbose was given.
 */
export function makeCliLoggerObject(flags: CliLoggerFlags, beforeWrite?: () => void): Logger {
  return loggerFromHook(makeCliLogger(flags, beforeWrite), { level: flags.quiet ? 'warn' : flags.verbose ? 'debug' : 'info' });
}
