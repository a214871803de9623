/**
 * Security: TLS/SASL settings pass through to the Kafka clients from options and environment,
 * proven against a broker listener that requires SASL/PLAIN; credentials never appear in what
 * agenttrace prints or reports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentTracer, shutdownTracing, type TracerError } from '@agenttrace/tracer';
import { KafkaAdmin, kafkaConnectionFromEnv, resolveSettings, type KafkaConnectionOptions } from '@agenttrace/common';
import { consumeAll, startCluster, stopCluster, uniqueName, type ClusterInfo } from '../test-support/stack.js';

describe('SASL/PLAIN listener', () => {
  const name = uniqueName('sasl');
  let cluster: ClusterInfo;
  let saslBrokers: string[];
  let good: KafkaConnectionOptions;

  beforeAll(async () => {
    cluster = await startCluster(name, 27092, 1, ['--sasl']);
    saslBrokers = [`127.0.0.1:${cluster.port + 200}`];
    good = { brokers: saslBrokers, sasl: { mechanism: 'PLAIN', username: cluster.sasl!.username, password: cluster.sasl!.password } };
  });

  afterAll(async () => {
    await shutdownTracing();
    await stopCluster(name);
  });

  it('delivers traced events with credentials taken from the environment', async () => {
    const env = {
      AGENTTRACE_BROKERS: saslBrokers.join(','),
      AGENTTRACE_KAFKA_SASL_MECHANISM: 'PLAIN',
      AGENTTRACE_KAFKA_SASL_USERNAME: cluster.sasl!.username,
      AGENTTRACE_KAFKA_SASL_PASSWORD: cluster.sasl!.password,
    };
    const fromEnv = kafkaConnectionFromEnv(env);
    expect(fromEnv.sasl).toEqual({ mechanism: 'PLAIN', username: cluster.sasl!.username, password: cluster.sasl!.password });
    const settings = resolveSettings({}, env);
    expect(settings.kafka.brokers).toEqual(saslBrokers);
    const topic = uniqueName('sasl-topic');
    const tracer = new AgentTracer({ sessionId: 'sess_sasl', agentId: 'secure-agent', topic, kafka: settings.kafka });
    await tracer.trackToolCall('vault.read', { path: 'kv/app' }, async () => ({ ok: true }));
    await tracer.close();
    const messages = await consumeAll(topic, { count: 3, conn: good });
    expect(messages.length).toBe(3);
  });

  it('reports a rejected password without ever printing it', async () => {
    const secret = `wrong-${uniqueName('pw')}`;
    const bad: KafkaConnectionOptions = { brokers: saslBrokers, sasl: { mechanism: 'PLAIN', username: 'agenttrace', password: secret } };
    const admin = new KafkaAdmin(bad);
    const err = await admin.listTopics(4000).then(
      () => undefined,
      (e: Error) => e,
    );
    admin.close();
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/SASL credentials|rejected|auth/i);
    expect(err!.message).toContain('127.0.0.1');
    expect(JSON.stringify({ m: err!.message, s: err!.stack })).not.toContain(secret);

    const reported: TracerError[] = [];
    const tracer = new AgentTracer({ sessionId: 's', agentId: 'a', topic: uniqueName('sasl-bad'), kafka: bad, deliveryTimeoutMs: 2000, onError: (e) => reported.push(e) });
    tracer.logDecision({ action: 'try' });
    await expect(tracer.close(8000)).rejects.toMatchObject({ code: 'DELIVERY_FAILED' });
    expect(reported.length).toBeGreaterThan(0);
    for (const e of reported) expect(`${e.message}\n${e.stack ?? ''}`).not.toContain(secret);
  });
});
