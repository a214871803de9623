// The reader's choice of source, before any connection: names come from the sources themselves,
// and a name no source has is rejected with the option named and the choices listed.
import { describe, expect, it } from 'vitest';
import { OptionsError, resolveSettings } from '@agenttrace/common';
import { SessionReader } from '@agenttrace/sessions';

// Nothing listens there: a check that connected would fail differently (SourceUnavailableError).
const settings = () => resolveSettings({ brokers: '127.0.0.1:1', redisUrl: 'redis://127.0.0.1:1', s3Endpoint: 'http://127.0.0.1:1', s3Bucket: 'b' }, {});

describe('SessionReader source choice', () => {
  it('read() accepts auto and the name of each source, and names them when given another', async () => {
    const reader = new SessionReader(settings());
    try {
      const err = await reader.read('sess_x', { source: 'parquet' as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OptionsError);
      expect((err as Error).message).toContain('options.source');
      expect((err as Error).message).toContain('must be auto, redis, kafka or archive, got "parquet"');
    } finally {
      await reader.close();
    }
  });

  it('listSessions() offers only the sources that can list (the archive cannot)', async () => {
    const reader = new SessionReader(settings());
    try {
      const err = await reader.listSessions({ source: 'archive' as never }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OptionsError);
      expect((err as Error).message).toContain('must be auto, redis or kafka, got "archive"');
    } finally {
      await reader.close();
    }
  });

  it('describes each source without credentials', async () => {
    const reader = new SessionReader(resolveSettings({ brokers: '127.0.0.1:1', redisUrl: 'redis://user:secret@127.0.0.1:1', s3Endpoint: 'http://127.0.0.1:1', s3Bucket: 'bkt' }, {}));
    try {
      expect(reader.describe('redis')).toBe('Redis at redis://user:***@127.0.0.1:1');
      expect(reader.describe('kafka')).toBe('Kafka at 127.0.0.1:1 (plaintext), topic agent-events');
      expect(reader.describe('archive')).toBe('S3 bucket "bkt" at http://127.0.0.1:1');
    } finally {
      await reader.close();
    }
  });

  it('a closed reader refuses to read', async () => {
    const reader = new SessionReader(settings());
    await reader.close();
    await reader.close();
    await expect(reader.read('sess_x')).rejects.toBeInstanceOf(OptionsError);
  });
});
