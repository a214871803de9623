import { AgentTraceError } from '@agenttrace/common';

/** Stable codes of the archiver's failures. */
export type ArchiverErrorCode =
  | 'UPLOAD_FAILED' // an object could not be written to S3 (retried with backoff; never committed past)
  | 'DLQ_FAILED' // a bad record could not be produced to the dead-letter topic
  | 'COMMIT_FAILED' // Kafka refused an offset commit (the range is replayed and its object overwritten)
  | 'ENCODE_FAILED' // a Parquet file could not be encoded
  | 'CONSUMER_FAILED' // the Kafka consumer could not connect or subscribe
  | 'STORAGE_FAILED' // the S3 bucket check at start-up failed: endpoint unreachable, no such bucket, or access denied
  | 'CLOSE_TIMEOUT' // close() gave up waiting for uploads; their ranges stay uncommitted and are replayed
  | 'OFFSET_ORDER' // offsets of a partition did not strictly rise: the archiver stops rather than write a file with repeated offsets
  | 'ARCHIVE_CONFLICT' // an object of another writer overlaps the range being archived in a way that cannot be adopted (see docs/decisions/0005)
  | 'SEEK_FAILED' // the consumer could not be repositioned after adopting a stored object
  | 'ARCHIVER_STATE'; // start() on a closed archiver, or twice (read failures are @agenttrace/archive-format's ArchiveFormatError)

export class ArchiverError extends AgentTraceError {
  override readonly code: ArchiverErrorCode;

  constructor(code: ArchiverErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options);
    this.code = code;
  }
}
