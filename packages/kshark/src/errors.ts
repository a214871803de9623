import { AgentTraceError, CLI_EXIT, exitCodeForError, exitCodesHelp } from '@agenttrace/common';

/**
 * Exit codes of every kshark command (documented in --help), from the table every agenttrace
 * command shares (docs/cli.md): 0 success, 1 unexpected failure, 2 bad usage or config file,
 * 3 session not found, 4 a source (Kafka, Redis, S3) is unreachable, 5 credentials refused.
 */
export const EXIT = {
  OK: CLI_EXIT.OK,
  FAILURE: CLI_EXIT.FAILURE,
  USAGE: CLI_EXIT.USAGE,
  NOT_FOUND: CLI_EXIT.NOT_FOUND,
  UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  AUTH_FAILED: CLI_EXIT.AUTH_FAILED,
  /** A config file unreadable or malformed is a usage error, as in every agenttrace command. */
  CONFIG: CLI_EXIT.USAGE,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = exitCodesHelp('kshark');

/** A usage problem found by kshark itself (bad flag value); exits with code 2. */
export class UsageError extends AgentTraceError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Maps any error to the exit code kshark ends with. */
export function exitCodeFor(err: unknown): number {
  return exitCodeForError(err);
}

/** A failure of kshark's own work (the archive cache); the code says which. */
export class KsharkError extends AgentTraceError {}
