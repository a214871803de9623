import { AgentTraceError } from '@agenttrace/common';

/** Stable codes of the archive format's failures. */
export type ArchiveFormatErrorCode =
  | 'ARCHIVE_READ_FAILED'; // readArchivedSession could not list the archive, fetch a file, or decode it

export class ArchiveFormatError extends AgentTraceError {
  override readonly code: ArchiveFormatErrorCode;

  constructor(code: ArchiveFormatErrorCode, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(code, message, options);
    this.code = code;
  }
}
