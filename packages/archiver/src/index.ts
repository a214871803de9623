export { Archiver } from './archiver.js';
export type { ArchiverStats } from './archiver.js';
export { resolveArchiverOptions, ARCHIVER_DEFAULTS } from './options.js';
export type { ArchiverOptions, ResolvedArchiverOptions, ParquetCompression } from './options.js';
export { ArchiverError } from './errors.js';
export type { ArchiverErrorCode } from './errors.js';
// The archive format moved to @agenttrace/archive-format; the archiver keeps naming what it exported before.
export {
  ARCHIVE_COLUMNS,
  ColumnBuffer,
  OFFSET_DIGITS,
  eventFromRow,
  hourStartOf,
  listArchiveFiles,
  listingPrefixes,
  objectKey,
  parseObjectKey,
  readArchivedSession,
} from '@agenttrace/archive-format';
export type { ArchiveColumn, ArchiveReadOptions, ArchiveRow, ObjectName } from '@agenttrace/archive-format';
export { PartitionRoller } from './roller.js';
export type { ClosedFile, BadRecord, RollReason } from './roller.js';
export { ArchiverMetrics } from './metrics.js';
export { nextDlqValueLength } from './dead-letter.js';
