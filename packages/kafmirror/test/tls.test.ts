import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaConnectionOptions } from '@agenttrace/common';
import { createTopic, deleteTopic, stack, uniqueName } from '../../../test-support/stack.js';
import { startTlsProxy, type TlsProxy } from '../../../test-support/tls-proxy.js';
import { describeTopicConfigs } from '../src/index.js';

/**
 * kafmirror reads the source topic's settings over TLS with a real certificate chain (a CA made
 * with openssl, a certificate for "localhost"). verifyHostname: false skips the name check only:
 * a chain signed by a CA that is not trusted is refused all the same.
 */
let proxy: TlsProxy;
const topic = uniqueName('km-tls');

beforeAll(async () => {
  proxy = await startTlsProxy(stack.brokers[0]!);
  await createTopic(topic, 1, stack.brokers, { 'retention.ms': '5400000', 'cleanup.policy': 'compact' });
}, 60_000);

afterAll(async () => {
  await proxy.close();
  await deleteTopic(topic);
});

const tls = (brokers: string[], ssl: KafkaConnectionOptions['ssl']): KafkaConnectionOptions => ({ brokers, securityProtocol: 'ssl', ssl });
const expected = { configs: { 'retention.ms': '5400000', 'cleanup.policy': 'compact' } };

describe('topic settings over TLS', () => {
  it('reads them through a trusted chain whose name matches', async () => {
    expect(await describeTopicConfigs(tls([`localhost:${proxy.port}`], { caLocation: proxy.ca }), topic)).toEqual(expected);
  });

  it('refuses a name mismatch unless verifyHostname is false', async () => {
    await expect(describeTopicConfigs(tls([`127.0.0.1:${proxy.port}`], { caLocation: proxy.ca }), topic, 5000)).rejects.toThrow(/altnames|IP: 127\.0\.0\.1/i);
    expect(await describeTopicConfigs(tls([`127.0.0.1:${proxy.port}`], { caLocation: proxy.ca, verifyHostname: false }), topic, 5000)).toEqual(expected);
  });

  it('refuses an untrusted chain even with verifyHostname false', async () => {
    await expect(describeTopicConfigs(tls([`localhost:${proxy.port}`], { caLocation: proxy.rogue, verifyHostname: false }), topic, 5000)).rejects.toThrow(/certificate/i);
    await expect(describeTopicConfigs(tls([`localhost:${proxy.port}`], { verifyHostname: false }), topic, 5000)).rejects.toThrow(/certificate/i);
  });
});
