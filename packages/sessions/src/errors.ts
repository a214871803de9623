import { AgentTraceError } from '@agenttrace/common';

/** Where a session can be read from (the name of a SessionSource). */
export type SessionSourceName = 'redis' | 'kafka' | 'archive';

/** Base class of the errors this package throws. */
export class SessionsError extends AgentTraceError {}

/** No source that was asked holds the session (in the requested time range). */
export class SessionNotFoundError extends SessionsError {
  readonly sessionId: string;
  /** The sources that were checked and did not have it. */
  readonly searched: SessionSourceName[];

  constructor(sessionId: string, searched: SessionSourceName[], detail = '') {
    super(
      'SESSION_NOT_FOUND',
      `session "${sessionId}" was not found (searched ${searched.join(', ') || 'nothing'})${detail ? `: ${detail}` : ''}`,
    );
    this.sessionId = sessionId;
    this.searched = searched;
  }
}

/**
 * A source could not be reached or refused the request. The message names the source and its
 * safe description (brokers, Redis URL without password, S3 endpoint and bucket), never credentials.
 */
export class SourceUnavailableError extends SessionsError {
  readonly source: SessionSourceName;
  readonly where: string;

  constructor(source: SessionSourceName, where: string, detail: string, cause?: unknown) {
    // A source that refused the credentials (SASL, TLS, S3 keys) is not "unavailable": retrying
    // will not help, and the CLIs' shared table gives it an exit code of its own.
    const refused = authFailure(cause);
    super(refused ? 'AUTH_FAILED' : 'SOURCE_UNAVAILABLE', `${source} source ${refused ? 'refused the credentials' : 'unavailable'}: ${where}: ${detail}`, { cause, retryable: !refused });
    this.source = source;
    this.where = where;
  }
}

const AUTH_CODES = new Set(['AUTH_FAILED', 'KAFKA_AUTH_FAILED', 'S3_AUTH_FAILED']);

/** True when the error or one of its causes is an authentication failure. */
function authFailure(err: unknown): boolean {
  let e = err;
  for (let depth = 0; depth < 8 && e !== null && typeof e === 'object'; depth++) {
    if (AUTH_CODES.has(String((e as { code?: unknown }).code))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
