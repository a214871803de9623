/**
 * Every S3 call is bounded (#14): against a server that accepts connections and never answers
 * (what a SIGSTOPped s3rver looks like to a client), calls fail within S3Options.timeoutMs, and a
 * caller's own tighter signal still applies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { S3Error, createS3Client, fetchOffload, isS3Abort, uploadOffload } from '@agenttrace/common';

let server: Server;
const sockets = new Set<Socket>();
let endpoint: string;

beforeAll(async () => {
  server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

async function timed<T>(p: Promise<T>): Promise<{ err: unknown; ms: number }> {
  const t0 = performance.now();
  try {
    await p;
    return { err: undefined, ms: performance.now() - t0 };
  } catch (err) {
    return { err, ms: performance.now() - t0 };
  }
}

describe('S3 calls against a hung server', () => {
  it('an upload fails once the client bound passes, retries included', async () => {
    const s3 = createS3Client({ endpoint, credentials, timeoutMs: 1_500 });
    const { err, ms } = await timed(uploadOffload(s3, { bucket: 'b' }, '"x"'));
    expect(err).toBeDefined();
    expect(isS3Abort(err)).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(1_400);
    expect(ms).toBeLessThan(1_500 + 2_000);
  });

  it("the caller's own signal bounds it further", async () => {
    const s3 = createS3Client({ endpoint, credentials, timeoutMs: 30_000 });
    const { err, ms } = await timed(uploadOffload(s3, { bucket: 'b' }, '"x"', AbortSignal.timeout(300)));
    expect(isS3Abort(err)).toBe(true);
    expect(ms).toBeLessThan(300 + 2_000);
  });

  it('a fetch fails with a clear error within the bound', async () => {
    const s3 = createS3Client({ endpoint, credentials, timeoutMs: 1_000 });
    const ref = { $offload: { bucket: 'b', key: 'p/payloads/sha256/00/x.json', size: 3, sha256: '00' } };
    const { err, ms } = await timed(fetchOffload(s3, ref));
    expect(err).toBeInstanceOf(S3Error);
    expect((err as S3Error).code).toBe('OFFLOAD_FETCH_FAILED');
    expect((err as S3Error).message).toContain('could not fetch offloaded payload s3://b/p/payloads/sha256/00/x.json');
    expect(ms).toBeLessThan(1_000 + 2_000);
  });

  it('rejects a bound that is not a positive number, naming it', () => {
    expect(() => createS3Client({ endpoint, credentials, timeoutMs: 0 })).toThrow(/s3\.timeoutMs must be a positive number/);
  });
});
