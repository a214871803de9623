/**
 * The real dashboard consumer as the tests run it on the local stack: its own group, the topic's
 * `.dlq` and `.alerts` topics, no metrics port, no alerts unless asked for.
 */
import { DashboardConsumer, type DashboardConsumerOptions } from '@agenttrace/dashboard-consumer';
import { stack, uniqueName } from './stack.js';

export function testDashboard(topic: string, redisPrefix: string, extra: DashboardConsumerOptions = {}): DashboardConsumer {
  return new DashboardConsumer({
    kafka: { brokers: stack.brokers },
    topic,
    group: uniqueName('test-dash'),
    redisUrl: stack.redisUrl,
    redisPrefix,
    dlqTopic: `${topic}.dlq`,
    alertsTopic: `${topic}.alerts`,
    metricsPort: false,
    alerts: false,
    ...extra,
  });
}
