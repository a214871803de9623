import { AgentTraceError, CLI_EXIT, exitCodeForError } from '@agenttrace/common';

/** Stable codes of kafmirror's failures. */
export type KafmirrorErrorCode =
  | 'SOURCE_UNAVAILABLE' // the source cluster could not be reached
  | 'TARGET_UNAVAILABLE' // the target cluster could not be reached
  | 'AUTH_FAILED' // a cluster refused the credentials (SASL/TLS)
  | 'TOPIC_NOT_FOUND' // a topic named with --topics does not exist on the source
  | 'FENCED' // another kafmirror with the same transactional id took over
  | 'TRANSACTION_FAILED' // a transaction could not be committed nor aborted
  | 'OFFSETS_UNREADABLE' // the offsets topic on the target could not be read back
  | 'TOPIC_SETUP_FAILED' // a target topic could not be created or grown
  | 'GROUP_ACTIVE' // failover: the group still has members on the target
  | 'NO_CHECKPOINTS' // failover: nothing recorded for the group
  | 'COMMIT_FAILED' // failover: the target refused the offset commit
  | 'POSITIONS_MISMATCH' // the stored offsets belong to another source cluster or topic id
  | 'STATE'; // start() twice, or on a closed replicator

/**
 * Exit codes of the kafmirror CLI (documented in --help), from the table every agenttrace
 * command shares (docs/cli.md). The source and the target being unreachable are one kind of
 * trouble (4); the message says which cluster and where.
 */
export const EXIT_CODES = {
  ok: CLI_EXIT.OK,
  failed: CLI_EXIT.FAILURE,
  usage: CLI_EXIT.USAGE,
  sourceUnavailable: CLI_EXIT.UNAVAILABLE,
  targetUnavailable: CLI_EXIT.UNAVAILABLE,
  authFailed: CLI_EXIT.AUTH_FAILED,
  topicNotFound: CLI_EXIT.NOT_FOUND,
  fenced: CLI_EXIT.FENCED,
  failoverRefused: CLI_EXIT.FAILOVER_REFUSED,
  portInUse: CLI_EXIT.PORT_IN_USE,
  positionsMismatch: CLI_EXIT.POSITIONS_MISMATCH,
} as const;

export class KafmirrorError extends AgentTraceError {
  override readonly code: KafmirrorErrorCode;

  constructor(code: KafmirrorErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options);
    this.code = code;
  }
}

/** The exit code the CLI uses for an error (the shared classification of docs/cli.md). */
export function exitCodeFor(err: unknown): number {
  return exitCodeForError(err);
}
