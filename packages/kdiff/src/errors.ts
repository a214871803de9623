import { AgentTraceError, CLI_EXIT, exitCodesHelp } from '@agenttrace/common';

/**
 * Exit status of `kdiff`, as `diff(1)` does it: 0 the sessions are the same (after ignores and
 * filters), 1 they differ, 2 trouble (unknown session, unreachable source, bad arguments,
 * unreadable expected-steps file). Scripts can tell "different" from "could not compare".
 * These are the shared codes of every agenttrace command (docs/cli.md) where they coincide;
 * the kinds of trouble that have codes above 2 elsewhere are all reported as 2 here.
 */
export const EXIT = {
  SAME: CLI_EXIT.OK,
  DIFFERENT: CLI_EXIT.FAILURE,
  TROUBLE: CLI_EXIT.USAGE,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = exitCodesHelp('kdiff');

/** Base class of kdiff's own errors. */
export class KdiffError extends AgentTraceError {}

/** A bad flag value found by kdiff itself. */
export class UsageError extends KdiffError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** An expected-steps file that cannot be read or does not follow kdiff.expected.v1. */
export class ExpectedFileError extends KdiffError {
  readonly file: string;

  constructor(file: string, problem: string, cause?: unknown) {
    super('EXPECTED_FILE_INVALID', `expected-steps file ${file}: ${problem}`, cause === undefined ? {} : { cause });
    this.file = file;
  }
}

/** A hint printed under the error message, telling what to do next. */
export function hintFor(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'SESSION_NOT_FOUND':
      return 'check the session id and --topic (kshark sessions lists recent ones); sessions past Kafka retention need the archiver';
    case 'SOURCE_UNAVAILABLE':
    case 'KAFKA_UNAVAILABLE':
      return 'check --brokers / --redis-url / --s3-endpoint (or AGENTTRACE_*), or pick a reachable source with --source';
    case 'EXPECTED_FILE_INVALID':
      return 'write a valid file with: kdiff snapshot <session> --out steps.json (format in docs/kdiff.md)';
    case 'CONFIG_UNREADABLE':
    case 'CONFIG_MALFORMED':
      return 'fix the file given by --config or AGENTTRACE_CONFIG';
    default:
      return undefined;
  }
}
