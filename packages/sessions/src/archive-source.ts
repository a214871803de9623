import type { ArchiveReadOptions } from '@agenttrace/archive-format';
import { describeS3, errorMessage } from '@agenttrace/common';
import type { AgentEvent } from '@agenttrace/contract';
import type { SourceConnections } from './connections.js';
import { SourceUnavailableError } from './errors.js';
import type { ReadSessionOptions, SessionReadResult, SessionSource, SourceAttempt } from './source.js';

/**
 * The Parquet archive on S3, read through @agenttrace/archive-format (the format package, not the
 * archiver service). It holds only the past: no follow, no listing.
 */
export class ArchiveSource implements SessionSource {
  readonly name = 'archive' as const;
  readonly #c: SourceConnections;

  constructor(connections: SourceConnections) {
    this.#c = connections;
  }

  describe(): string {
    return describeS3(this.#c.settings.s3);
  }

  async read(sessionId: string, options: ReadSessionOptions): Promise<SourceAttempt> {
    let partition: number | undefined;
    try {
      partition = await this.#c.partitionOf(sessionId);
    } catch {
      // The archive does not need Kafka; the partition only narrows what is listed.
      partition = undefined;
    }
    const s3 = this.#c.settings.s3;
    let events: AgentEvent[];
    try {
      // The Parquet reader and the S3 SDK load only when the archive is read: a replay from Redis
      // or Kafka (most of them) does not pay for them at start-up.
      const { readArchivedSession } = await import('@agenttrace/archive-format');
      const params: ArchiveReadOptions = {
        s3: this.#c.s3(),
        bucket: s3.bucket,
        prefix: this.#c.opts.archivePrefix || s3.prefix || '',
        topic: this.#c.settings.topic,
        sessionId,
      };
      if (options.from !== undefined) params.from = options.from;
      if (options.to !== undefined) params.to = options.to;
      if (partition !== undefined) params.partition = partition;
      events = await readArchivedSession(params);
    } catch (err) {
      throw new SourceUnavailableError('archive', describeS3(s3), `reading the archive failed: ${errorMessage(err)}. Is the S3 endpoint reachable and the bucket right?`, err);
    }
    if (events.length === 0) return { kind: 'missing', detail: `not in the archive under s3://${s3.bucket}/${this.#c.opts.archivePrefix || s3.prefix || ''}` };
    const result: SessionReadResult = { sessionId, events, source: 'archive', warnings: [], cursor: { source: 'archive', topic: this.#c.settings.topic } };
    if (partition !== undefined) {
      result.partition = partition;
      result.cursor.partition = partition;
    }
    return { kind: 'found', result };
  }
}
