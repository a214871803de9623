/**
 * Redaction end to end: values the tracer scrubs never reach Kafka, Redis or the Parquet
 * archive — checked in the raw record bytes, every Redis key of the session, and every column
 * of the archived rows (read by DuckDB).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { AgentTracer, shutdownTracing } from '@agenttrace/tracer';
import { consumeAll, createTopic, deleteTopic, eventually, stack, uniqueName } from '../test-support/stack.js';
import { archiverService, clearRedisPrefix, dashboardService, readArchive } from './harness.js';
import { DuckDBInstance } from '@duckdb/node-api';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createS3Client } from '@agenttrace/common';

const topic = uniqueName('rel-redact');
const prefix = `${topic}:`;

afterAll(async () => {
  await shutdownTracing();
  await clearRedisPrefix(stack.redisUrl, prefix);
  await deleteTopic(topic);
});

describe('redaction across the whole pipeline', () => {
  it('keeps e-mail addresses, card numbers and secrets out of Kafka, Redis and Parquet', async () => {
    const secrets = ['jane.doe@example.com', '4111 1111 1111 1111', '5500-0000-0000-0004', 'sk_live_abcdef123456', 'hunter2-password'];
    await createTopic(topic, 4);
    const dashboard = dashboardService({ brokers: stack.brokers, topic, redisUrl: stack.redisUrl, prefix, group: `${topic}-d`, dlqTopic: `${topic}.dlq` });
    const archiver = archiverService({ brokers: stack.brokers, topic, s3Endpoint: stack.s3Endpoint, bucket: stack.s3Bucket, prefix: topic, group: `${topic}-a`, dlqTopic: `${topic}.dlq` });
    dashboard.start();
    archiver.start();
    try {
      const sessionId = `${topic}-s`;
      const tracer = new AgentTracer({ sessionId, agentId: 'support-agent', topic, kafka: { brokers: stack.brokers } });
      await tracer.trackToolCall('crm.lookup', { email: secrets[0], note: `card ${secrets[1]} on file` }, async () => ({ card: secrets[2], api_key: secrets[3] }), {
        reasoning: `customer ${secrets[0]} asked to update card ${secrets[2]}`,
      });
      tracer.logDecision({ action: 'update_card', reasoning: 'the customer confirmed', password: secrets[4] });
      await tracer.close();

      const records = await consumeAll(topic, { count: 4 });
      const kafkaText = records.map((m) => m.value!.toString()).join('\n');
      expect(records.length).toBe(4);
      expect(kafkaText).toContain('[REDACTED:email]');

      const redis = new Redis(stack.redisUrl);
      const redisText = await eventually('the session in Redis', async () => {
        const keys = await redis.keys(`${prefix}*`);
        const parts: string[] = [];
        for (const k of keys) {
          const type = await redis.type(k);
          if (type === 'list') parts.push(...(await redis.lrange(k, 0, -1)));
          else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(k)));
          else if (type === 'zset') parts.push(...(await redis.zrange(k, 0, -1)));
          else if (type === 'set') parts.push(...(await redis.smembers(k)));
          else if (type === 'string') parts.push((await redis.get(k)) ?? '');
        }
        const text = parts.join('\n');
        return text.includes('update_card') ? text : undefined;
      });
      redis.disconnect();

      await eventually('the session in the archive', async () => ((await readArchive({ bucket: stack.s3Bucket, endpoint: stack.s3Endpoint }, topic)).files > 0 ? true : undefined), 60_000, 2000);
      // Every column of every archived row, as text (Parquet pages are compressed, so read them).
      const s3 = createS3Client({ endpoint: stack.s3Endpoint });
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: stack.s3Bucket, Prefix: `${topic}/` }));
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      let parquetText = '';
      for (const o of listed.Contents ?? []) {
        const body = await (await s3.send(new GetObjectCommand({ Bucket: stack.s3Bucket, Key: o.Key! }))).Body!.transformToByteArray();
        const path = `/tmp/${uniqueName('redact')}.parquet`;
        await import('node:fs/promises').then((fs) => fs.writeFile(path, body));
        const rows = await conn.runAndReadAll(`SELECT * FROM read_parquet('${path}')`);
        parquetText += JSON.stringify(rows.getRowsJson());
      }
      conn.closeSync();
      expect(parquetText).toContain('update_card');

      for (const secret of secrets) {
        expect(kafkaText, 'Kafka').not.toContain(secret);
        expect(redisText, 'Redis').not.toContain(secret);
        expect(parquetText, 'Parquet').not.toContain(secret);
      }
    } finally {
      await Promise.all([dashboard.stop(), archiver.stop()]);
    }
  }, 180_000);
});
