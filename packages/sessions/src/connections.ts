import type { S3Client } from '@aws-sdk/client-s3';
import type { Redis } from 'ioredis';
import { createS3Client, describeKafka, errorMessage, KafkaAdmin, KafkaError, OptionsError, redisKeys, type AgentTraceSettings, type RedisKeys } from '@agenttrace/common';
import { partitionForKey } from '@agenttrace/contract';
import { SourceUnavailableError } from './errors.js';
import { assertKafkaReachable } from './kafka-scan.js';
import type { ResolvedSessionReaderOptions } from './options.js';
import { connectRedis, dashboardCoverage, readKafkaIndex, type KafkaIndex } from './redis-timeline.js';
import type { Coverage } from './scan-plan.js';

/**
 * The clients a reader's sources share, opened lazily and kept until close(): the Kafka source
 * uses the Redis offset index, the archive source the partition count, follow() crosses from
 * Redis to Kafka, and restoring offloads needs S3 whatever the source.
 */
export class SourceConnections {
  readonly settings: AgentTraceSettings;
  readonly opts: ResolvedSessionReaderOptions;
  readonly keys: RedisKeys;
  #redis: Promise<Redis> | undefined;
  #admin: KafkaAdmin | undefined;
  #s3: S3Client | undefined;
  #partitions: number | undefined;
  #reachable: Promise<void> | undefined;
  #closed = false;

  constructor(settings: AgentTraceSettings, opts: ResolvedSessionReaderOptions) {
    this.settings = settings;
    this.opts = opts;
    this.keys = redisKeys(settings.redisPrefix);
  }

  assertOpen(): void {
    if (this.#closed) throw new OptionsError('SessionReader', 'is closed');
  }

  redis(): Promise<Redis> {
    this.assertOpen();
    if (!this.#redis) {
      const p = connectRedis(this.settings.redisUrl, this.opts.redisConnectTimeoutMs);
      this.#redis = p;
      // A failed connection is retried on the next call instead of being cached.
      p.catch(() => {
        if (this.#redis === p) this.#redis = undefined;
      });
    }
    return this.#redis;
  }

  /** Whether Redis was asked for already (and its connection did not fail). */
  get redisTried(): boolean {
    return this.#redis !== undefined;
  }

  admin(): KafkaAdmin {
    this.assertOpen();
    this.#admin ??= new KafkaAdmin({ ...this.settings.kafka, clientId: this.opts.clientId });
    return this.#admin;
  }

  s3(): S3Client {
    this.#s3 ??= createS3Client(this.settings.s3);
    return this.#s3;
  }

  kafkaFailure(what: string, err: unknown): SourceUnavailableError {
    if (err instanceof SourceUnavailableError) return err;
    const where = describeKafka(this.settings.kafka);
    // KafkaError messages already say what failed and where; say where only once.
    const detail = err instanceof KafkaError ? err.message.replace(` on ${where}`, '') : `${what} failed: ${errorMessage(err)}`;
    return new SourceUnavailableError('kafka', where, detail, err);
  }

  async partitionCount(): Promise<number | undefined> {
    if (this.#partitions !== undefined) return this.#partitions;
    let n: number | undefined;
    // Every Kafka read starts here (partitionOf), so this is the one place to fail fast.
    await this.assertKafkaReachable();
    try {
      n = await this.admin().partitionCount(this.settings.topic, this.opts.kafkaTimeoutMs);
    } catch (err) {
      throw this.kafkaFailure(`describing topic ${this.settings.topic}`, err);
    }
    // Partitions can only be added; caching the count for the reader's lifetime is safe enough for one command.
    if (n !== undefined) this.#partitions = n;
    return n;
  }

  /** Fails at once, naming each address and why, when no bootstrap broker accepts a connection (checked once). */
  assertKafkaReachable(): Promise<void> {
    this.#reachable ??= assertKafkaReachable(this.settings.kafka);
    // A failed check is made again on the next call instead of being cached.
    this.#reachable.catch(() => (this.#reachable = undefined));
    return this.#reachable;
  }

  /** The partition the session's records are on (the producer's murmur2 of the key), or undefined when the topic does not exist. */
  async partitionOf(sessionId: string): Promise<number | undefined> {
    const n = await this.partitionCount();
    return n === undefined ? undefined : partitionForKey(sessionId, n);
  }

  /** The Redis offset index of a session, when Redis answers quickly; never fails the read. */
  async tryKafkaIndex(sessionId: string): Promise<KafkaIndex | undefined> {
    try {
      const redis = await this.redis();
      return await readKafkaIndex(redis, this.keys, sessionId);
    } catch {
      return undefined;
    }
  }

  /** The topic's id now (never cached: a topic deleted and created again has a new one); undefined when unknown. */
  async tryTopicId(): Promise<string | undefined> {
    try {
      const [d] = await this.admin().describeTopics([this.settings.topic], this.opts.kafkaTimeoutMs);
      return d?.topicId || undefined;
    } catch {
      return undefined;
    }
  }

  /** What the dashboard consumer groups vouch for on a partition (see planScan); never fails the read. */
  async tryCoverage(partition: number, topicId: string): Promise<Coverage[]> {
    try {
      return await dashboardCoverage(await this.redis(), this.settings.redisPrefix, this.settings.topic, partition, topicId);
    } catch {
      return [];
    }
  }

  /** Closes every connection; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const redis = this.#redis;
    this.#redis = undefined;
    if (redis) {
      try {
        const r = await redis;
        await r.quit().catch(() => r.disconnect());
      } catch {
        // never connected
      }
    }
    this.#admin?.close();
    this.#admin = undefined;
    this.#s3?.destroy();
    this.#s3 = undefined;
  }
}
