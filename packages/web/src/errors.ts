import { AgentTraceError, CLI_EXIT } from '@agenttrace/common';

/** Exit status of `agenttrace-web`: the codes every agenttrace command shares (docs/cli.md). */
export const EXIT = {
  OK: CLI_EXIT.OK,
  FAILURE: CLI_EXIT.FAILURE,
  USAGE: CLI_EXIT.USAGE,
  /** The address is in use or cannot be bound. */
  LISTEN: CLI_EXIT.PORT_IN_USE,
  /** The config file cannot be read or is malformed. */
  CONFIG: CLI_EXIT.USAGE,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODES_HELP = `Exit codes:
  0  stopped cleanly (Ctrl-C / SIGTERM)
  1  unexpected failure
  2  bad arguments (e.g. a non-loopback --host without --token), unreadable or malformed config file
  9  the address cannot be bound (port in use, unknown host)
  Every agenttrace command uses the same codes for the same trouble (docs/cli.md).`;

/** Base class of the web server's own errors. */
export class WebError extends AgentTraceError {}

/** A bad flag value or an unsafe combination of them. */
export class UsageError extends WebError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** The server could not listen on its address. */
export class ListenError extends WebError {
  constructor(where: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | null)?.code;
    const why = code === 'EADDRINUSE' ? 'the port is in use (pick another with --port)' : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' ? 'no such local address (check --host)' : code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : String(code ?? 'error');
    super('LISTEN_FAILED', `cannot listen on ${where}: ${why}`, { cause });
  }
}

/** A request the API refuses; `status` is the HTTP status it answers with. */
export class HttpError extends WebError {
  readonly status: number;

  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

export function exitCodeFor(err: unknown): ExitCode {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'USAGE' || code === 'INVALID_OPTION') return EXIT.USAGE;
  if (code === 'LISTEN_FAILED') return EXIT.LISTEN;
  if (code === 'CONFIG_UNREADABLE' || code === 'CONFIG_MALFORMED') return EXIT.CONFIG;
  return EXIT.FAILURE;
}
