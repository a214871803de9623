import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { describeTopicConfigs, describeTopicIdentity, protocolAdminOptions, type KafkaConnectionOptions } from '../src/index.js';
import { createTopic, deleteTopic, stack, uniqueName } from '../../../test-support/stack.js';

/**
 * The protocol admin (cluster id, topic id, DescribeConfigs) over TLS with a real certificate
 * chain: a CA made here with openssl signs a certificate for "localhost", and a TLS listener
 * in front of the stack's broker presents it. verifyHostname: false may skip the name check,
 * never the chain.
 */
let dir: string;
let server: Server;
let port: number;
const sockets = new Set<Socket>();
const topic = uniqueName('tls-admin');

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'agenttrace-tls-'));
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=agenttrace test CA']);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rogue.key', '-out', 'rogue.pem', '-days', '2', '-subj', '/CN=someone else']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  const [host, brokerPort] = stack.brokers[0]!.split(':');
  // TLS terminates here and the bytes go on to the plaintext broker: the client's whole TLS
  // handshake and chain check is real, and the Kafka requests behind it too.
  server = createServer({ key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')) }, (tlsSock) => {
    const up = connect({ host: host!, port: Number(brokerPort) });
    sockets.add(up);
    sockets.add(tlsSock);
    tlsSock.pipe(up).pipe(tlsSock);
    const close = () => {
      up.destroy();
      tlsSock.destroy();
    };
    up.on('error', close);
    tlsSock.on('error', close);
    up.on('close', close);
    tlsSock.on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
  await createTopic(topic, 2, stack.brokers, { 'retention.ms': '7200000' });
}, 60_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
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
    const conn = tls([`localhost:${port}`], { caLocation: join(dir, 'ca.pem') });
    const viaTls = await describeTopicIdentity(conn, topic);
    expect(viaTls.clusterId).toBe(direct.clusterId);
    expect(viaTls.topicId).toBe(direct.topicId);
    expect(await describeTopicConfigs(conn, topic)).toMatchObject({ 'retention.ms': '7200000' });
  });

  it('refuses a certificate whose name does not match, unless verifyHostname is false', async () => {
    // The certificate names localhost, not 127.0.0.1.
    const strict = tls([`127.0.0.1:${port}`], { caLocation: join(dir, 'ca.pem') });
    await expect(describeTopicIdentity(strict, topic, 5000)).rejects.toThrow(/altnames|hostname|IP: 127\.0\.0\.1/i);
    const lax = tls([`127.0.0.1:${port}`], { caLocation: join(dir, 'ca.pem'), verifyHostname: false });
    expect((await describeTopicIdentity(lax, topic, 5000)).topicId).toBeDefined();
  });

  it('refuses a chain it does not trust even with verifyHostname false', async () => {
    const wrongCa = tls([`127.0.0.1:${port}`], { caLocation: join(dir, 'rogue.pem'), verifyHostname: false });
    await expect(describeTopicIdentity(wrongCa, topic, 5000)).rejects.toThrow(/certificate/i);
    const noCa = tls([`localhost:${port}`], { verifyHostname: false });
    await expect(describeTopicConfigs(noCa, topic, 5000)).rejects.toThrow(/certificate/i);
  });
});
