/**
 * Exit codes of every agenttrace command, defined once (docs/cli.md shows the same table and
 * explains the choices). One kind of trouble has one code in every tool; a tool uses the subset
 * that can happen to it. kdiff keeps diff(1)'s convention: 1 means "the sessions differ", and
 * every kind of trouble collapses to 2 (see kdiffExitCode).
 */
export const CLI_EXIT = {
  /** Success; a service stopped by SIGTERM/SIGINT after a clean shutdown. */
  OK: 0,
  /** A failure while running (the message says which). kdiff: the sessions differ. */
  FAILURE: 1,
  /** Invalid flags, environment or config file: nothing was tried. */
  USAGE: 2,
  /** What was asked for does not exist (a session, a topic). */
  NOT_FOUND: 3,
  /** A server (Kafka, Redis or S3) cannot be reached; the message says which and where. */
  UNAVAILABLE: 4,
  /** A server refused the credentials or the permission (SASL, TLS, ACL, S3 keys). */
  AUTH_FAILED: 5,
  /** Shutdown gave up waiting (uploads, a transaction); the unfinished work is redone on restart. */
  CLOSE_TIMEOUT: 6,
  /** kafmirror: another instance with the same transactional id took over. */
  FENCED: 7,
  /** kafmirror failover refused: no checkpoints for the group, or it is active on the target. */
  FAILOVER_REFUSED: 8,
  /** The port of the metrics server is in use. */
  PORT_IN_USE: 9,
  /** Stored positions (offsets) belong to another cluster or topic id: refused until told what to do. */
  POSITIONS_MISMATCH: 10,
  /** Stopped by SIGINT without finishing (a second Ctrl-C while closing): 128 + 2. */
  SIGINT: 130,
  /** Stopped by SIGTERM without finishing (a second SIGTERM while closing): 128 + 15. */
  SIGTERM: 143,
} as const;

export type CliExitCode = (typeof CLI_EXIT)[keyof typeof CLI_EXIT];

/** The commands that share the table. */
export type CliTool = 'kshark' | 'kdiff' | 'kafmirror' | 'agenttrace-dashboard' | 'agenttrace-archiver';

/** The code of a process stopped by a signal before finishing: 128 + the signal number, as shells report it. */
export function signalExitCode(signal: NodeJS.Signals | string): number {
  return signal === 'SIGTERM' ? CLI_EXIT.SIGTERM : CLI_EXIT.SIGINT;
}

/**
 * Error codes (AgentTraceError.code of any package) and the kind of trouble they are. Codes not
 * listed are failures during a run (1). Kept here so a new error code is classified once for
 * every command.
 */
const KINDS: Record<string, number> = {
  USAGE: CLI_EXIT.USAGE,
  INVALID_OPTION: CLI_EXIT.USAGE,
  BAD_TIME: CLI_EXIT.USAGE,
  CONFIG_UNREADABLE: CLI_EXIT.USAGE,
  CONFIG_MALFORMED: CLI_EXIT.USAGE,
  EXPECTED_FILE_INVALID: CLI_EXIT.USAGE,
  // The configured S3 bucket does not exist: a setting to correct, like a bad option.
  S3_NO_BUCKET: CLI_EXIT.USAGE,
  SESSION_NOT_FOUND: CLI_EXIT.NOT_FOUND,
  TOPIC_NOT_FOUND: CLI_EXIT.NOT_FOUND,
  SOURCE_UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  TARGET_UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  KAFKA_UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  REDIS_UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  S3_UNAVAILABLE: CLI_EXIT.UNAVAILABLE,
  OFFLOAD_FETCH_FAILED: CLI_EXIT.UNAVAILABLE,
  AUTH_FAILED: CLI_EXIT.AUTH_FAILED,
  KAFKA_AUTH_FAILED: CLI_EXIT.AUTH_FAILED,
  S3_AUTH_FAILED: CLI_EXIT.AUTH_FAILED,
  CLOSE_TIMEOUT: CLI_EXIT.CLOSE_TIMEOUT,
  FENCED: CLI_EXIT.FENCED,
  GROUP_ACTIVE: CLI_EXIT.FAILOVER_REFUSED,
  NO_CHECKPOINTS: CLI_EXIT.FAILOVER_REFUSED,
  METRICS_PORT_IN_USE: CLI_EXIT.PORT_IN_USE,
  POSITIONS_MISMATCH: CLI_EXIT.POSITIONS_MISMATCH,
  // Node's listen() error, as the cause of a metrics server that could not start.
  EADDRINUSE: CLI_EXIT.PORT_IN_USE,
};

/**
 * The exit code for an error: its own code if known, else the first known code along its
 * `cause` chain (a service wraps "Kafka unreachable" in its own start-up error), else 1.
 */
export function exitCodeForError(err: unknown): number {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && KINDS[code] !== undefined) return KINDS[code];
    e = (e as { cause?: unknown }).cause;
  }
  return CLI_EXIT.FAILURE;
}

/** kdiff keeps diff(1)'s status: 0 same, 1 different, 2 for any trouble (the message says which kind). */
export function kdiffExitCode(code: number): number {
  return code === CLI_EXIT.OK ? CLI_EXIT.OK : CLI_EXIT.USAGE;
}

interface ExitRow {
  code: number;
  kind: string;
  /** What the code means for each tool that uses it. */
  tools: Partial<Record<CliTool, string>>;
}

/** The table of docs/cli.md; each tool's --help prints its column. */
export const CLI_EXIT_TABLE: readonly ExitRow[] = [
  {
    code: CLI_EXIT.OK,
    kind: 'success',
    tools: {
      kshark: 'success (replay --follow: stopped by Ctrl-C)',
      kdiff: 'the sessions are the same (after --ignore and filters); snapshot written',
      kafmirror: 'stopped by SIGTERM/SIGINT after the transaction in flight; failover: offsets committed',
      'agenttrace-dashboard': 'stopped by SIGTERM/SIGINT after a clean shutdown',
      'agenttrace-archiver': 'stopped by SIGTERM/SIGINT after uploading and committing everything',
    },
  },
  {
    code: CLI_EXIT.FAILURE,
    kind: 'failure during the run (kdiff: the sessions differ)',
    tools: {
      kshark: 'unexpected failure (AGENTTRACE_DEBUG=1 prints the stack)',
      kdiff: 'the sessions differ',
      kafmirror: 'failed for another reason (the message says which); nothing committed is lost',
      'agenttrace-dashboard': 'failed while running (the message says which)',
      'agenttrace-archiver': 'failed while running (a file could not be encoded, ...); a restart archives the rest again',
    },
  },
  {
    code: CLI_EXIT.USAGE,
    kind: 'usage or config error (kdiff: any trouble)',
    tools: {
      kshark: 'bad usage: unknown flag, bad time expression or value, config file unreadable or malformed',
      kdiff: 'trouble: bad arguments or config file, unreadable --expected file, unknown session, unreachable source',
      kafmirror: 'invalid flags, environment or config file',
      'agenttrace-dashboard': 'invalid flags, environment or config file',
      'agenttrace-archiver': 'invalid flags, environment or config file; the S3 bucket does not exist',
    },
  },
  {
    code: CLI_EXIT.NOT_FOUND,
    kind: 'not found',
    tools: {
      kshark: 'session not found',
      kdiff: '(reported as 2)',
      kafmirror: 'a topic named with --topics does not exist on the source',
    },
  },
  {
    code: CLI_EXIT.UNAVAILABLE,
    kind: 'a server is unreachable',
    tools: {
      kshark: 'a source is unreachable (Kafka, Redis or S3; the message says which and where)',
      kdiff: '(reported as 2)',
      kafmirror: 'the source or the target cluster cannot be reached (the message says which)',
      'agenttrace-dashboard': 'Redis or Kafka unreachable at start-up (within --start-timeout)',
      'agenttrace-archiver': 'Kafka or S3 unreachable at start-up (still failing when --start-timeout ran out)',
    },
  },
  {
    code: CLI_EXIT.AUTH_FAILED,
    kind: 'credentials or permission refused',
    tools: {
      kshark: 'a source refused the credentials (SASL/TLS/ACL)',
      kdiff: '(reported as 2)',
      kafmirror: 'a cluster refused the credentials or the permission (SASL/TLS/ACL)',
      'agenttrace-dashboard': 'Kafka refused the credentials or the permission (SASL/TLS/ACL)',
      'agenttrace-archiver': 'Kafka or S3 refused the credentials or the permission (SASL/TLS/ACL, S3 keys or bucket policy)',
    },
  },
  {
    code: CLI_EXIT.CLOSE_TIMEOUT,
    kind: 'shutdown timed out',
    tools: {
      'agenttrace-archiver': 'shutdown gave up waiting for uploads (S3 unreachable); those ranges are archived on restart',
    },
  },
  {
    code: CLI_EXIT.FENCED,
    kind: 'fenced by another instance',
    tools: { kafmirror: 'another kafmirror with the same transactional id took over' },
  },
  {
    code: CLI_EXIT.FAILOVER_REFUSED,
    kind: 'failover refused',
    tools: { kafmirror: 'failover refused: no checkpoints for the group, or it is active on the target' },
  },
  {
    code: CLI_EXIT.PORT_IN_USE,
    kind: 'metrics port in use',
    tools: {
      kafmirror: 'the --metrics-port is in use',
      'agenttrace-dashboard': 'the metrics port is in use',
      'agenttrace-archiver': 'the --metrics-port is in use',
    },
  },
  {
    code: CLI_EXIT.POSITIONS_MISMATCH,
    kind: 'stored positions belong to another cluster or topic',
    tools: {
      kafmirror: "the offsets stored for the source belong to another topic id (the topic was recreated); nothing was copied",
      'agenttrace-dashboard': "the offsets in Redis belong to another cluster or topic id; start with --reset-positions earliest, latest or committed",
    },
  },
  {
    code: CLI_EXIT.SIGINT,
    kind: 'interrupted by SIGINT (128 + 2)',
    tools: {
      kshark: 'stopped by Ctrl-C before finishing (not --follow)',
      kdiff: 'stopped by Ctrl-C before finishing',
      kafmirror: 'a second SIGINT while stopping: exited at once (the open transaction is aborted by the next start)',
      'agenttrace-dashboard': 'a second SIGINT while stopping: exited without a clean shutdown',
      'agenttrace-archiver': 'a second SIGINT while stopping: exited at once; uncommitted ranges are archived on restart',
    },
  },
  {
    code: CLI_EXIT.SIGTERM,
    kind: 'interrupted by SIGTERM (128 + 15)',
    tools: {
      kshark: 'stopped by SIGTERM before finishing (not --follow)',
      kdiff: 'stopped by SIGTERM before finishing',
      kafmirror: 'a second SIGTERM while stopping (as for 130)',
      'agenttrace-dashboard': 'a second SIGTERM while stopping (as for 130)',
      'agenttrace-archiver': 'a second SIGTERM while stopping (as for 130)',
    },
  },
];

/** The exit-code section of a tool's --help: its column of CLI_EXIT_TABLE. */
export function exitCodesHelp(tool: CliTool): string {
  // kdiff's column marks the codes it reports as 2 with "(...)": they are not its own.
  const rows = CLI_EXIT_TABLE.filter((r) => r.tools[tool] !== undefined && !r.tools[tool]!.startsWith('('));
  const title = tool === 'kdiff' ? 'Exit status (like diff):' : 'Exit codes:';
  const note = tool === 'kdiff' ? 'Other agenttrace commands give each kind of trouble its own code; kdiff reports them all as 2 (docs/cli.md).' : 'Every agenttrace command uses the same codes for the same trouble (docs/cli.md).';
  return [title, ...rows.map((r) => `  ${String(r.code).padStart(3)}  ${r.tools[tool]!}`), `  ${note}`].join('\n');
}
