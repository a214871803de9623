import { AgentTraceError } from '@agenttrace/common';

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

/** Exit codes of the kafmirror CLI, one per failure kind (documented in --help). */
export const EXIT_CODES = {
  ok: 0,
  failed: 1,
  usage: 2,
  sourceUnavailable: 3,
  targetUnavailable: 4,
  authFailed: 5,
  topicNotFound: 6,
  fenced: 7,
  failoverRefused: 8,
  positionsMismatch: 9,
} as const;

export class KafmirrorError extends AgentTraceError {
  override readonly code: KafmirrorErrorCode;

  constructor(code: KafmirrorErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options);
    this.code = code;
  }
}

/** The exit code the CLI uses for an error. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof KafmirrorError)) return EXIT_CODES.failed;
  switch (err.code) {
    case 'SOURCE_UNAVAILABLE':
      return EXIT_CODES.sourceUnavailable;
    case 'TARGET_UNAVAILABLE':
      return EXIT_CODES.targetUnavailable;
    case 'AUTH_FAILED':
      return EXIT_CODES.authFailed;
    case 'TOPIC_NOT_FOUND':
      return EXIT_CODES.topicNotFound;
    case 'FENCED':
      return EXIT_CODES.fenced;
    case 'GROUP_ACTIVE':
    case 'NO_CHECKPOINTS':
      return EXIT_CODES.failoverRefused;
    case 'POSITIONS_MISMATCH':
      return EXIT_CODES.positionsMismatch;
    default:
      return EXIT_CODES.failed;
  }
}
