import type { S3Client } from '@aws-sdk/client-s3';
import type { AgentEvent } from '@agenttrace/contract';

/** The archiver's read API (packages/archiver), loaded lazily so the reader works without it. */
export type ReadArchivedSession = (params: {
  s3: S3Client;
  bucket: string;
  prefix?: string;
  topic: string;
  sessionId: string;
  from?: number;
  to?: number;
  partition?: number;
}) => Promise<AgentEvent[]>;

let loaded: Promise<ReadArchivedSession | undefined> | undefined;

/** The archiver's readArchivedSession, or undefined when the archiver package is not built. */
export function loadArchiveReader(): Promise<ReadArchivedSession | undefined> {
  loaded ??= (async () => {
    try {
      // A variable specifier keeps the bundle-free build from needing the archiver's types.
      const name = '@agenttrace/archiver';
      const mod = (await import(name)) as { readArchivedSession?: unknown };
      return typeof mod.readArchivedSession === 'function' ? (mod.readArchivedSession as ReadArchivedSession) : undefined;
    } catch {
      return undefined;
    }
  })();
  return loaded;
}
