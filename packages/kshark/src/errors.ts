import { AgentTraceError } from '@agenttrace/common';

/**
 * Exit codes of every kshark command (documented in --help):
 * 0 success, 1 unexpected failure, 2 bad usage (unknown flag, bad time expression, bad value),
 * 3 session not found, 4 a source (Kafka, Redis, S3) is unreachable, 5 the config file is unreadable or malformed.
 */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  UNAVAILABLE: 4,
  CONFIG: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  unexpected failure
  2  bad usage: unknown flag, bad time expression, bad value
  3  session not found
  4  a source is unreachable (Kafka, Redis or S3; the message says which and where)
  5  config file unreadable or malformed`;

/** A usage problem found by kshark itself (bad flag value); exits with code 2. */
export class UsageError extends AgentTraceError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Maps any error to the exit code and the one-line message kshark prints. */
export function exitCodeFor(err: unknown): ExitCode {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'USAGE':
    case 'BAD_TIME':
    case 'INVALID_OPTION':
      return EXIT.USAGE;
    case 'SESSION_NOT_FOUND':
      return EXIT.NOT_FOUND;
    case 'SOURCE_UNAVAILABLE':
    case 'KAFKA_UNAVAILABLE':
    case 'OFFLOAD_FETCH_FAILED':
      return EXIT.UNAVAILABLE;
    case 'CONFIG_UNREADABLE':
    case 'CONFIG_MALFORMED':
      return EXIT.CONFIG;
    default:
      return EXIT.FAILURE;
  }
}
