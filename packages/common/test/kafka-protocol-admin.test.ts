import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTopicConfigs, describeTopicIdentity, protocolAdminOptions, type KafkaConnectionOptions } from '../src/index.js';
import { createTopic, deleteTopic, stack, uniqueName } from '../../../test-support/stack.js';
import { startTlsProxy, type TlsProxy } from '../../../test-support/tls-proxy.js';

/**
 * The protocol admin (cluster id, topic id, DescribeConfigs) over TLS with a real certificate
 * chain: a CA made with openssl signs a certificate for "localhost", presented by a TLS listener
 * in front of the stack's broker. verifyHostname: false may skip the name check, never the chain.
 */
let proxy: TlsProxy;
const topic = uniqueName('tls-admin');

beforeAll(async () => {
  proxy = await startTlsProxy(stack.brokers[0]!);
  await createTopic(topic, 2, stack.brokers, { 'retention.ms': '7200000' });
}, 60_000);

afterAll(async () => {
  await proxy.close();
  await deleteTopic(topic);
});

const tls = (brokers: string[], ssl: KafkaConnectionOptions['ssl']): KafkaConnectionOptions => ({ brokers, securityProtocol: 'ssl', ssl });

describe('protocol admin over TLS with a real certificate chain', () => {
  it('maps TLS and SASL settings: the chain is always verified, SCRAM is passed on', () => {
    const o = protocolAdminOptions({ brokers: ['h:1'], securityProtocol: 'sasl_ssl', sasl: { mechanism: 'SCRAM-SHA-512', username: 'u', password: 'p' }, ssl: { verifyHostname: false } }, 1000);
    expect(o.tls?.rejectUnauthorized).toBe(true);
    expect(typeof o.tls?.checkServerIdentity).toBe('function');
    expect(o.sasl).toEqual({ mechanism: 'SCRAM-SHA-512', username: 'u', password: 'p' });
    const plain = protocolAdminOptions({ brokers: ['h:1'] }, 1000);
    expect(plain.tls).toBeUndefined();
    expect(plain.sasl).toBeUndefined();
  });

  it('reads the cluster id and topic settings through a trusted chain whose name matches', async () => {
    const direct = await describeTopicIdentity({ brokers: stack.brokers }, topic);
    const conn = tls([`localhost:${proxy.port}`], { caLocation: proxy.ca });
    const viaTls = await describeTopicIdentity(conn, topic);
    expect(viaTls.clusterId).toBe(direct.clusterId);
    expect(viaTls.topicId).toBe(direct.topicId);
    expect(await describeTopicConfigs(conn, topic)).toMatchObject({ 'retention.ms': '7200000' });
  });

  it('refuses a certificate whose name does not match, unless verifyHostname is false', async () => {
    // The certificate names localhost, not 127.0.0.1.
    const strict = tls([`127.0.0.1:${proxy.port}`], { caLocation: proxy.ca });
    await expect(describeTopicIdentity(strict, topic, 5000)).rejects.toThrow(/altnames|hostname|IP: 127\.0\.0\.1/i);
    const lax = tls([`127.0.0.1:${proxy.port}`], { caLocation: proxy.ca, verifyHostname: false });
    expect((await describeTopicIdentity(lax, topic, 5000)).topicId).toBeDefined();
  });

  it('refuses a chain it does not trust even with verifyHostname false', async () => {
    const wrongCa = tls([`127.0.0.1:${proxy.port}`], { caLocation: proxy.rogue, verifyHostname: false });
    await expect(describeTopicIdentity(wrongCa, topic, 5000)).rejects.toThrow(/certificate/i);
    const noCa = tls([`localhost:${proxy.port}`], { verifyHostname: false });
    await expect(describeTopicConfigs(noCa, topic, 5000)).rejects.toThrow(/certificate/i);
  });
});
