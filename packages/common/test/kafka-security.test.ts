import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupConsumerConfig, kafkaConnectionFromEnv, kafkaError, resolveSettings } from '../src/index.js';

const conn = { brokers: ['127.0.0.1:1'], securityProtocol: 'sasl_ssl' as const, sasl: { mechanism: 'SCRAM-SHA-512' as const, username: 'u', password: 'p' } };

describe('Kafka security settings and failures', () => {
  it('reads only the TLS variables that are set, so a config file keeps its CA when the environment sets the key password', () => {
    expect(Object.keys(kafkaConnectionFromEnv({ AGENTTRACE_KAFKA_SSL_KEY_PASSWORD: 'k' }).ssl ?? {})).toEqual(['keyPassword']);
    const dir = mkdtempSync(join(tmpdir(), 'agenttrace-tls-config-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ kafka: { ssl: { caLocation: '/etc/agenttrace/ca.pem' } } }));
      const settings = resolveSettings({ config: file }, { AGENTTRACE_BROKERS: '127.0.0.1:9093', AGENTTRACE_KAFKA_SSL_KEY_PASSWORD: 'k' });
      expect(settings.kafka.ssl).toEqual({ caLocation: '/etc/agenttrace/ca.pem', keyPassword: 'k' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a refused connection to a SASL listener is "unavailable", not an authentication failure', () => {
    const e = kafkaError('listing topics', conn, new Error('Local: Broker transport failure'), 'sasl_ssl://127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)');
    expect(e.code).toBe('KAFKA_UNAVAILABLE');
  });

  it('a rejected login and a failed TLS handshake are KAFKA_AUTH_FAILED and say what to check', () => {
    const login = kafkaError('listing topics', conn, new Error('Local: Broker transport failure'), 'authentication failure');
    expect(login).toMatchObject({ code: 'KAFKA_AUTH_FAILED', retryable: false });
    expect(login.message).toMatch(/refused the SASL login/);
    const tls = kafkaError('listing topics', conn, new Error('Local: Broker transport failure'), 'ssl error');
    expect(tls.code).toBe('KAFKA_AUTH_FAILED');
    expect(tls.message).toMatch(/TLS handshake failed: does AGENTTRACE_KAFKA_SSL_CA_LOCATION name the CA/);
    expect(`${login.message} ${tls.message}`).not.toContain('"p"');
  });
});

describe('groupConsumerConfig', () => {
  it('never lets librdkafka commit or store positions, bounds the prefetch and paces the heartbeat', () => {
    const cfg = groupConsumerConfig({ brokers: ['b1:9092'], rdkafka: { 'enable.auto.commit': true } }, { clientId: 'svc', group: 'g', prefetchKbytes: 8192, sessionTimeoutMs: 6000 }) as unknown as Record<string, unknown>;
    expect(cfg).toMatchObject({
      'client.id': 'svc',
      'group.id': 'g',
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'queued.max.messages.kbytes': 8192,
      'session.timeout.ms': 6000,
      'heartbeat.interval.ms': 1500,
      'topic.metadata.refresh.interval.ms': 5000,
    });
    expect(cfg['group.instance.id']).toBeUndefined();
    const small = groupConsumerConfig({ brokers: ['b1:9092'] }, { clientId: 'svc', group: 'g', instanceId: 'pod-1', prefetchKbytes: 1, sessionTimeoutMs: 1000 }) as unknown as Record<string, unknown>;
    expect(small).toMatchObject({ 'group.instance.id': 'pod-1', 'heartbeat.interval.ms': 500 });
  });
});
