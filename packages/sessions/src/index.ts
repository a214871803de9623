export { SessionReader } from './reader.js';
export type { ReadSessionOptions, SessionReadResult, SessionCursor, FollowOptions, AlertSummary } from './reader.js';
export { SessionsError, SessionNotFoundError, SourceUnavailableError } from './errors.js';
export type { SessionSource } from './errors.js';
export { SESSION_READER_DEFAULTS, resolveSessionReaderOptions } from './options.js';
export type { SessionReaderOptions, ResolvedSessionReaderOptions } from './options.js';
export { seqAnomalies } from './seq.js';
export { SESSION_SORTS, selectSessions, stepLabel, SummaryBuilder } from './list.js';
export type { SessionSummary, SessionSort, SessionStatus, ListSessionsOptions } from './list.js';
