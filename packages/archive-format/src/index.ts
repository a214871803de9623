export { ARCHIVE_COLUMNS, ColumnBuffer, eventFromRow } from './columns.js';
export type { ArchiveColumn, ArchiveRow, ParquetCompression } from './columns.js';
export { ArchiveFormatError } from './errors.js';
export type { ArchiveFormatErrorCode } from './errors.js';
export {
  OFFSET_DIGITS,
  dayDir,
  hourDir,
  hourStartOf,
  listingPrefixes,
  objectKey,
  parseObjectKey,
  partitionFilePrefix,
  topicPrefix,
} from './layout.js';
export type { ObjectName } from './layout.js';
export { listArchiveFiles, readArchivedSession } from './read.js';
export type { ArchiveFile, ArchiveReadOptions } from './read.js';
export { getObjectBytes, listKeys } from './s3-objects.js';
