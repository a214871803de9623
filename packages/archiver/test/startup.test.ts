import { afterAll, describe, expect, it } from 'vitest';
import { Archiver } from '../src/index.js';
import { ArchiverError } from '../src/errors.js';
import { createTopic, deleteTopic, eventually, freePort, makeEvent, produceRaw, stack, uniqueName } from '../../../test-support/stack.js';
import { deletePrefix, s3 } from './helpers.js';

const client = s3();
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function startFailure(s3Options: { endpoint: string; bucket: string; credentials?: { accessKeyId: string; secretAccessKey: string } }, startTimeoutMs: number): Promise<{ err: ArchiverError; ms: number }> {
  const archiver = new Archiver({ kafka: { brokers: stack.brokers }, topic: uniqueName('arch-s3check'), s3: { ...s3Options, prefix: uniqueName('arch-s3check') }, startTimeoutMs, log: () => undefined });
  const t0 = Date.now();
  const err = await archiver.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  const ms = Date.now() - t0;
  await archiver.close();
  expect(err).toBeInstanceOf(ArchiverError);
  return { err: err as ArchiverError, ms };
}

describe('start-up checks the S3 bucket', () => {
  it('names a bucket that does not exist, at once', async () => {
    const { err, ms } = await startFailure({ endpoint: stack.s3Endpoint, bucket: 'no-such-bucket-agenttrace' }, 20_000);
    expect(err.code).toBe('STORAGE_FAILED');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/S3 bucket "no-such-bucket-agenttrace" at http:\/\/127\.0\.0\.1:\d+ does not exist/);
    expect(ms).toBeLessThan(10_000);
  }, 60_000);

  it('says credentials were refused, at once, without printing them', async () => {
    const secret = uniqueName('wrong-secret');
    const { err, ms } = await startFailure({ endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: secret } }, 20_000);
    expect(err.code).toBe('STORAGE_FAILED');
    expect(err.message).toMatch(/refused access \(HTTP 403\): check the credentials/);
    expect(err.message).not.toContain(secret);
    expect(ms).toBeLessThan(10_000);
  }, 60_000);

  it('names an unreachable endpoint within the start timeout', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const { err, ms } = await startFailure({ endpoint, bucket: stack.s3Bucket }, 3000);
    expect(err.code).toBe('STORAGE_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`S3 bucket "${stack.s3Bucket}" at ${endpoint} is unreachable`);
    expect(ms).toBeLessThan(15_000);
  }, 60_000);
});

describe('started before its topic exists', () => {
  it('says what it waits for on /healthz, then archives the topic once it is created', async () => {
    const topic = uniqueName('arch-late');
    const prefix = uniqueName('arch-late');
    cleanups.push(() => deleteTopic(topic), () => deletePrefix(client, prefix));
    const warnings: string[] = [];
    const archiver = new Archiver({
      kafka: { brokers: stack.brokers },
      topic,
      groupId: uniqueName('arch-late-group'),
      s3: { endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix },
      metricsPort: 0,
      rollRows: 3,
      rollAgeMs: 500,
      consumer: { 'session.timeout.ms': 10_000 },
      log: (level, msg) => void (level === 'warn' && warnings.push(msg)),
    });
    await archiver.start();
    cleanups.push(() => archiver.close());
    const url = `http://127.0.0.1:${archiver.metricsPort}/healthz`;
    const early = await fetch(url);
    expect(early.status).toBe(503);
    expect(await early.json()).toMatchObject({ ok: false, waiting: `topic ${topic} to be created` });
    expect(warnings.some((w) => w.includes(`waiting for topic ${topic}`))).toBe(true);

    await createTopic(topic, 1);
    const sid = 'sess_arch_late';
    await produceRaw(topic, [0, 1, 2].map((seq) => ({ key: sid, value: JSON.stringify(makeEvent({ session_id: sid, seq })) })));
    await eventually('the late topic archived', () => archiver.stats.rows === 3, 30_000, 100);
    const later = await fetch(url);
    expect(later.status).toBe(200);
    expect(await later.json()).not.toHaveProperty('waiting');
  }, 90_000);
});
