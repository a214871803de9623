/**
 * Every tool against a broker that only speaks SASL_SSL: a real TLS listener with a certificate
 * chain made by openssl, and SCRAM-SHA-256/512 users created when the cluster was formatted
 * (`scripts/stack kafka up NAME --sasl-ssl`). Settings reach the command-line programs the way a
 * user gives them: the `AGENTTRACE_KAFKA_*` variables `scripts/stack kafka env` prints.
 *
 * Ports: AGENTTRACE_SECURE_PORTS="client,controller,sasl_ssl" (default 27095,27195,27395).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentTracer, shutdownTracing } from '@agenttrace/tracer';
import { KafkaAdmin, createS3Client, describeTopicConfigs as describeWithProtocolAdmin, describeTopicIdentity, type KafkaConnectionOptions } from '@agenttrace/common';
import { describeTopicConfigs } from '@agenttrace/kafmirror';
import { clearRedisPrefix, readArchive, readRedis, Service } from './harness.js';
import { consumeAll, deleteTopic, eventually, freePort, repoRoot, runNode, runProcess, stack, startCluster, stopCluster, uniqueName, type ClusterInfo } from '../test-support/stack.js';

interface SecureInfo extends ClusterInfo {
  nodes: Array<ClusterInfo['nodes'][number] & { saslSslPort: number }>;
  saslSsl: { caLocation: string; users: Record<'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'PLAIN', { username: string; password: string }> };
}

const [PORT, CONTROLLER_PORT, SASL_SSL_PORT] = (process.env.AGENTTRACE_SECURE_PORTS ?? '27095,27195,27395').split(',').map(Number) as [number, number, number];
const name = uniqueName('secure');
const bin = (pkg: string) => join(repoRoot, 'packages', pkg, 'dist', 'cli.js');
const AUTH_EXIT = 5;

let cluster: SecureInfo;
let brokers: string[];
/** The exports `scripts/stack kafka env NAME --mechanism M` prints, as an environment. */
const envOf: Partial<Record<'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'PLAIN', Record<string, string>>> = {};
const topics: string[] = [];
let otherCaDir: string;

function conn(mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'PLAIN', overrides: Partial<KafkaConnectionOptions> = {}): KafkaConnectionOptions {
  const u = cluster.saslSsl.users[mechanism];
  return { brokers, securityProtocol: 'sasl_ssl', sasl: { mechanism, username: u.username, password: u.password }, ssl: { caLocation: cluster.saslSsl.caLocation }, ...overrides };
}

async function secureTopic(prefix: string, config: Record<string, string> = {}): Promise<string> {
  const topic = uniqueName(prefix);
  topics.push(topic);
  const admin = new KafkaAdmin(conn('SCRAM-SHA-512'));
  try {
    await admin.ensureTopic({ topic, num_partitions: 3, replication_factor: 1, config });
  } finally {
    admin.close();
  }
  return topic;
}

/** A session written by the tracer with the given connection: session_start, `steps` tool calls, session_end. */
const eventsOf = (steps: number) => steps + 2;
async function traceSession(topic: string, session: string, kafka: KafkaConnectionOptions, steps: number): Promise<void> {
  const tracer = new AgentTracer({ sessionId: session, agentId: 'secure-agent', topic, kafka, ensureTopic: false });
  for (let i = 0; i < steps; i++) await tracer.trackToolCall('vault.read', { path: `kv/app/${i}` }, async () => ({ ok: true, i }));
  await tracer.close();
}

beforeAll(async () => {
  cluster = (await startCluster(name, PORT, 1, ['--sasl-ssl', '--controller-port', String(CONTROLLER_PORT), '--sasl-ssl-port', String(SASL_SSL_PORT)])) as SecureInfo;
  brokers = cluster.nodes.map((n) => `127.0.0.1:${n.saslSslPort}`);
  for (const m of ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'] as const) {
    const r = await runProcess(join(repoRoot, 'scripts', 'stack'), ['kafka', 'env', name, '--mechanism', m]);
    expect(r.code).toBe(0);
    envOf[m] = Object.fromEntries([...r.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((x) => [x[1]!, x[2]!]));
  }
  // A CA that signed nothing of this cluster's: trusting only it must fail the handshake.
  otherCaDir = mkdtempSync(join(tmpdir(), 'agenttrace-other-ca-'));
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=untrusted test CA', '-keyout', join(otherCaDir, 'key.pem'), '-out', join(otherCaDir, 'ca.pem')], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await shutdownTracing();
  if (cluster) {
    for (const t of topics) await deleteTopic(t, stack.brokers).catch(() => undefined);
    await stopCluster(name);
  }
  if (otherCaDir) rmSync(otherCaDir, { recursive: true, force: true });
}, 120_000);

describe('a SASL_SSL-only cluster (openssl CA, SCRAM users made at format time)', () => {
  it('scripts/stack kafka env prints a SASL_SSL connection for each user', () => {
    const e = envOf['SCRAM-SHA-512']!;
    expect(e).toMatchObject({
      AGENTTRACE_BROKERS: brokers.join(','),
      AGENTTRACE_KAFKA_SECURITY_PROTOCOL: 'sasl_ssl',
      AGENTTRACE_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      AGENTTRACE_KAFKA_SASL_USERNAME: cluster.saslSsl.users['SCRAM-SHA-512'].username,
      AGENTTRACE_KAFKA_SSL_CA_LOCATION: cluster.saslSsl.caLocation,
    });
    expect(envOf['SCRAM-SHA-256']!.AGENTTRACE_KAFKA_SASL_USERNAME).toBe(cluster.saslSsl.users['SCRAM-SHA-256'].username);
  });

  it('SCRAM-SHA-512: the tracer writes a session; agenttrace-dashboard puts it in Redis, agenttrace-archiver in S3, kshark replays it and kdiff compares it from Kafka', async () => {
    const topic = await secureTopic('sec-512');
    const session = `sess_${uniqueName('scram512')}`;
    await traceSession(topic, session, conn('SCRAM-SHA-512'), 4);
    const env = envOf['SCRAM-SHA-512']!;
    const redisPrefix = `${uniqueName('sec')}:`;
    const s3Prefix = uniqueName('sec-archive');
    const dashboard = new Service('dashboard', [bin('dashboard-consumer'), '--topic', topic, '--group', uniqueName('sec-dash'), '--redis-url', stack.redisUrl, '--redis-prefix', redisPrefix, '--dlq-topic', `${topic}.dlq`, '--no-alerts', '--metrics-port', '0'], env);
    const archiver = new Service('archiver', [bin('archiver'), '--topic', topic, '--group', uniqueName('sec-arch'), '--dlq-topic', `${topic}.dlq`, '--s3-endpoint', stack.s3Endpoint, '--s3-bucket', stack.s3Bucket, '--s3-prefix', s3Prefix, '--roll-rows', '8', '--roll-age', '1s'], env);
    topics.push(`${topic}.dlq`);
    dashboard.start();
    archiver.start();
    try {
      const timeline = await eventually(
        'the session in Redis',
        async () => {
          if (!dashboard.running) throw new Error(`agenttrace-dashboard exited:\n${dashboard.log}`);
          const ids = (await readRedis(stack.redisUrl, redisPrefix, [session])).get(session) ?? [];
          return ids.length >= eventsOf(4) ? ids : undefined;
        },
        60_000,
        250,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nagenttrace-dashboard:\n${dashboard.log}`);
      });
      expect(timeline).toHaveLength(eventsOf(4));
      const archived = await eventually(
        'the session in the archive',
        async () => {
          if (!archiver.running) throw new Error(`agenttrace-archiver exited:\n${archiver.log}`);
          const ids = (await readArchive({ bucket: stack.s3Bucket, endpoint: stack.s3Endpoint }, s3Prefix)).perSession.get(session) ?? [];
          return ids.length >= eventsOf(4) ? ids : undefined;
        },
        60_000,
        500,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nagenttrace-archiver:\n${archiver.log}`);
      });
      expect([...archived].sort()).toEqual([...timeline].sort());

      const replay = await runNode(bin('kshark'), ['replay', session, '--source', 'kafka', '--topic', topic, '--json'], { env: { ...process.env, ...env }, timeoutMs: 60_000 });
      expect(replay.stderr).not.toContain(cluster.saslSsl.users['SCRAM-SHA-512'].password);
      expect(replay.code, replay.stderr).toBe(0);
      const doc = JSON.parse(replay.stdout) as { events: Array<{ event_id: string }> };
      expect(doc.events.map((e) => e.event_id).sort()).toEqual([...timeline].sort());

      // kdiff reads through the same sessions package: the session compared with itself is equal.
      const diff = await runNode(bin('kdiff'), ['compare', session, session, '--source', 'kafka', '--topic', topic], { env: { ...process.env, ...env }, timeoutMs: 60_000 });
      expect(diff.code, diff.stderr).toBe(0);
    } finally {
      await dashboard.stop();
      await archiver.stop();
      await clearRedisPrefix(stack.redisUrl, redisPrefix);
      await deleteS3Prefix(s3Prefix);
    }
    expect(dashboard.log).not.toContain(cluster.saslSsl.users['SCRAM-SHA-512'].password);
    expect(archiver.log).not.toContain(cluster.saslSsl.users['SCRAM-SHA-512'].password);
  }, 180_000);

  it('SCRAM-SHA-256: the tracer, kshark and the protocol admin client; a SHA-512-only user cannot log in with SHA-256', async () => {
    const topic = await secureTopic('sec-256');
    const session = `sess_${uniqueName('scram256')}`;
    await traceSession(topic, session, conn('SCRAM-SHA-256'), 2);
    const replay = await runNode(bin('kshark'), ['replay', session, '--source', 'kafka', '--topic', topic, '--json'], { env: { ...process.env, ...envOf['SCRAM-SHA-256']! }, timeoutMs: 60_000 });
    expect(replay.code, replay.stderr).toBe(0);
    expect((JSON.parse(replay.stdout) as { events: unknown[] }).events).toHaveLength(eventsOf(2));

    const id = await describeTopicIdentity(conn('SCRAM-SHA-256'), topic);
    expect(id.partitions).toBe(3);
    expect(id.clusterId).toMatch(/\S{10,}/);

    // The mechanism really is the one asked for: the SHA-512 user has no SHA-256 credential.
    const mixed = conn('SCRAM-SHA-512', {});
    mixed.sasl = { ...mixed.sasl!, mechanism: 'SCRAM-SHA-256' };
    await expect(describeTopicIdentity(mixed, topic, 8000)).rejects.toMatchObject({ code: 'KAFKA_AUTH_FAILED' });
  }, 120_000);

  it('kafmirror replicates from the secure cluster to the main one, topic settings included (DescribeConfigs over SASL_SSL)', async () => {
    const topic = await secureTopic('sec-mirror', { 'retention.ms': '7200000', 'max.message.bytes': '2000000' });
    const alias = `secure-${Date.now().toString(36)}`;
    topics.push(`kafmirror.offsets.${alias}`, `kafmirror.checkpoints.${alias}`);
    const session = `sess_${uniqueName('mirror')}`;
    await traceSession(topic, session, conn('SCRAM-SHA-512'), 3);

    // Both DescribeConfigs paths of topic-configs.ts: SCRAM through @platformatic/kafka, PLAIN through the built-in client over TLS.
    for (const m of ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'] as const) {
      const { configs } = await describeTopicConfigs(conn(m), topic);
      expect(configs, m).toMatchObject({ 'retention.ms': '7200000', 'max.message.bytes': '2000000' });
    }

    const source = envOf['SCRAM-SHA-512']!;
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(source)) env[k.replace(/^AGENTTRACE_/, 'AGENTTRACE_SOURCE_')] = v;
    const mirror = new Service(
      'kafmirror',
      [bin('kafmirror'), 'replicate', '--source-alias', alias, '--target', stack.brokers.join(','), '--target-alias', 'main', '--topics', topic, '--start-from', 'earliest', '--replication-factor', '1', '--metrics-port', '0', '--progress-interval', '1s', '--quiet'],
      env,
    );
    topics.push(topic);
    mirror.start();
    try {
      const copied = await eventually(
        'the session on the main cluster',
        async () => {
          if (!mirror.running) throw new Error(`kafmirror exited:\n${mirror.log}`);
          const got = await consumeAll(topic, { brokers: stack.brokers, count: eventsOf(3), timeoutMs: 5_000, isolation: 'read_committed' }).catch(() => []);
          return got.length >= eventsOf(3) ? got : undefined;
        },
        90_000,
        1_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nkafmirror:\n${mirror.log}`);
      });
      expect(copied).toHaveLength(eventsOf(3));
      const onTarget = await describeWithProtocolAdmin({ brokers: stack.brokers }, topic);
      expect(onTarget).toMatchObject({ 'retention.ms': '7200000', 'max.message.bytes': '2000000' });
    } finally {
      await mirror.stop();
    }
    expect(mirror.log).not.toContain(cluster.saslSsl.users['SCRAM-SHA-512'].password);
  }, 180_000);

  it('agenttrace-otlp serve writes spans to the secure cluster', async () => {
    const topic = await secureTopic('sec-otlp');
    const port = await freePort();
    const otlp = new Service('otlp', [bin('otlp'), 'serve', '--port', String(port), '--topic', topic], envOf['SCRAM-SHA-512']!);
    otlp.start();
    try {
      await eventually('otlp listening', () => {
        if (!otlp.running) throw new Error(`agenttrace-otlp exited:\n${otlp.log}`);
        return otlp.log.includes('listening on');
      }, 60_000, 200);
      const session = uniqueName('conv-secure');
      const now = Date.now();
      const body = {
        resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: '0af7651916cd43dd8448eb211c80319d', spanId: '00000000000000b1', name: 'chat', startTimeUnixNano: String(now * 1e6), endTimeUnixNano: String(now * 1e6 + 5e6), attributes: [{ key: 'gen_ai.operation.name', value: { stringValue: 'chat' } }, { key: 'gen_ai.conversation.id', value: { stringValue: session } }] }] }] }],
      };
      const res = await fetch(`http://127.0.0.1:${port}/v1/traces`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
      expect(res.status, await res.clone().text()).toBe(200);
      const got = await consumeAll(topic, { conn: conn('SCRAM-SHA-512'), count: 1, timeoutMs: 30_000 });
      expect(got.map((m) => m.key?.toString())).toContain(session);
    } finally {
      await otlp.stop();
    }
    expect(otlp.log).not.toContain(cluster.saslSsl.users['SCRAM-SHA-512'].password);
  }, 120_000);

  it('a wrong password fails with exit code 5 and says so, never printing the password', async () => {
    const wrong = `wrong-${uniqueName('pw')}`;
    const bad = { ...envOf['SCRAM-SHA-512']!, AGENTTRACE_KAFKA_SASL_PASSWORD: wrong };
    const kshark = await runNode(bin('kshark'), ['replay', 'sess_none', '--source', 'kafka', '--topic', uniqueName('sec-none')], { env: { ...process.env, ...bad }, timeoutMs: 60_000 });
    expect(kshark.code, kshark.stderr).toBe(AUTH_EXIT);
    expect(kshark.stderr).toMatch(/SASL|credentials|auth/i);
    expect(kshark.stdout + kshark.stderr).not.toContain(wrong);

    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(bad)) env[k.replace(/^AGENTTRACE_/, 'AGENTTRACE_SOURCE_')] = v;
    const mirror = await runNode(bin('kafmirror'), ['replicate', '--target', stack.brokers.join(','), '--topics', uniqueName('sec-none'), '--metrics-port', '0', '--quiet'], { env, timeoutMs: 90_000 });
    expect(mirror.code, mirror.stderr).toBe(AUTH_EXIT);
    expect(mirror.stderr).toMatch(/source cluster/);
    expect(mirror.stderr).toMatch(/SASL|credentials|auth/i);
    expect(mirror.stdout + mirror.stderr).not.toContain(wrong);

    const dashboard = await runNode(bin('dashboard-consumer'), ['--topic', uniqueName('sec-none'), '--redis-prefix', `${uniqueName('sec')}:`, '--no-alerts', '--metrics-port', '0', '--quiet'], { env: { ...process.env, ...bad }, timeoutMs: 90_000 });
    expect(dashboard.code, dashboard.stderr).toBe(AUTH_EXIT);
    expect(dashboard.stderr).toMatch(/refused the SASL login/);
    expect(dashboard.stdout + dashboard.stderr).not.toContain(wrong);

    const archiver = await runNode(bin('archiver'), ['--topic', uniqueName('sec-none'), '--s3-prefix', uniqueName('sec-none'), '--quiet'], { env: { ...process.env, ...bad }, timeoutMs: 90_000 });
    expect(archiver.code, archiver.stderr).toBe(AUTH_EXIT);
    expect(archiver.stderr).toMatch(/refused the SASL login/);
    expect(archiver.stdout + archiver.stderr).not.toContain(wrong);
  }, 240_000);

  it('a CA that did not sign the broker certificate is refused, by librdkafka and by both DescribeConfigs clients', async () => {
    const untrusted = { ...envOf['SCRAM-SHA-512']!, AGENTTRACE_KAFKA_SSL_CA_LOCATION: join(otherCaDir, 'ca.pem') };
    const kshark = await runNode(bin('kshark'), ['replay', 'sess_none', '--source', 'kafka', '--topic', uniqueName('sec-none')], { env: { ...process.env, ...untrusted }, timeoutMs: 60_000 });
    expect(kshark.code, kshark.stderr).toBe(AUTH_EXIT);
    expect(kshark.stderr).toMatch(/TLS handshake failed/);

    const dashboard = await runNode(bin('dashboard-consumer'), ['--topic', uniqueName('sec-none'), '--redis-prefix', `${uniqueName('sec')}:`, '--no-alerts', '--metrics-port', '0', '--quiet'], { env: { ...process.env, ...untrusted }, timeoutMs: 90_000 });
    expect(dashboard.code, dashboard.stderr).toBe(AUTH_EXIT);
    expect(dashboard.stderr).toMatch(/TLS handshake failed/);

    for (const m of ['SCRAM-SHA-512', 'PLAIN'] as const) {
      const err = await describeTopicConfigs(conn(m, { ssl: { caLocation: join(otherCaDir, 'ca.pem') } }), 'any', 8000).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err, m).toBeInstanceOf(Error);
      expect(`${err!.message} ${String((err as { cause?: unknown }).cause)}`, m).toMatch(/certificate|self.signed|verify/i);
    }
  }, 120_000);
});

async function deleteS3Prefix(prefix: string): Promise<void> {
  const s3 = createS3Client({ endpoint: stack.s3Endpoint });
  const list = await s3.send(new ListObjectsV2Command({ Bucket: stack.s3Bucket, Prefix: prefix }));
  const keys = (list.Contents ?? []).map((o) => ({ Key: o.Key! }));
  if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: stack.s3Bucket, Delete: { Objects: keys } }));
}
