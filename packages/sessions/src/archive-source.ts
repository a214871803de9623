import { readArchivedSession } from '@agenttrace/archive-format';

/** The archive read API (packages/archive-format): a static import, so import graphs see it. */
export const loadArchiveReader = (): Promise<typeof readArchivedSession> => Promise.resolve(readArchivedSession);
