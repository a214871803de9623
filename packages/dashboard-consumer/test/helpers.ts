import { Redis } from 'ioredis';
import { stack, uniqueName, createTopic, deleteTopic, dropRedisPrefix } from '../../../test-support/stack.js';
import { DashboardConsumer, type DashboardConsumerOptions, type LogEntry } from '../src/index.js';

/** A Redis client for assertions (the consumer under test has its own). */
export function testRedis(url = stack.redisUrl): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1 });
}

/** Deletes every key under a test prefix. */
export const dropPrefix = dropRedisPrefix;

export interface Fixture {
  topic: string;
  dlqTopic: string;
  alertsTopic: string;
  group: string;
  prefix: string;
  logs: LogEntry[];
  consumers: DashboardConsumer[];
  /** Starts a consumer on the fixture's topic, group and prefix; closed by cleanup(). */
  start(extra?: DashboardConsumerOptions): Promise<DashboardConsumer>;
  cleanup(redis: Redis): Promise<void>;
}

export async function fixture(name: string, partitions = 3): Promise<Fixture> {
  const topic = uniqueName(`dash-${name}`);
  const f: Fixture = {
    topic,
    dlqTopic: `${topic}.dlq`,
    alertsTopic: `${topic}.alerts`,
    group: uniqueName(`dash-${name}-g`),
    prefix: `${uniqueName(`dash-${name}`)}:`,
    logs: [],
    consumers: [],
    async start(extra = {}) {
      const c = new DashboardConsumer({
        kafka: { brokers: stack.brokers },
        topic: f.topic,
        group: f.group,
        redisUrl: stack.redisUrl,
        redisPrefix: f.prefix,
        dlqTopic: f.dlqTopic,
        alertsTopic: f.alertsTopic,
        metricsPort: 0,
        sessionTimeoutMs: 6000,
        onLog: (e) => f.logs.push(e),
        ...extra,
      });
      f.consumers.push(c);
      await c.start();
      return c;
    },
    async cleanup(redis) {
      await Promise.all(f.consumers.map((c) => c.close()));
      await dropPrefix(redis, f.prefix);
      await Promise.all([deleteTopic(f.topic), deleteTopic(f.dlqTopic), deleteTopic(f.alertsTopic)]);
    },
  };
  await createTopic(topic, partitions);
  return f;
}
