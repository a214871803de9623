import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeAll, createTopic, deleteTopic, eventually, kafkaConn, makeEvent, produceRaw, startCluster, stack, stopCluster, uniqueName, type ClusterInfo } from '../../../test-support/stack.js';
import { describeTopicConfigs } from '../src/index.js';
import { runCli, spawnCli } from './helpers.js';

// Ports in the kafmirror range where nothing listens: connection refused, like a cluster that is down.
const DOWN = '127.0.0.1:23991';
const DOWN2 = '127.0.0.1:24991';
const LIVE = stack.brokers.join(',');

describe('kafmirror CLI', () => {
  it('documents examples and exit codes in --help of every command', async () => {
    for (const args of [['--help'], ['replicate', '--help'], ['failover', '--help']]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Examples:/);
      expect(r.stdout).toMatch(/Exit codes:[\s\S]*4 +the source or the target cluster cannot be reached/);
    }
  });

  it.each([
    [['replicate', '--source', LIVE, '--target', LIVE], /--topics or --topics-regex is required/],
    [['replicate', '--source', 'us-east-1', '--target', LIVE, '--topics', 'a'], /--source "us-east-1" is neither a broker list .* nor a cluster alias/],
    [['replicate', '--source', LIVE, '--target', DOWN, '--source-alias', 'x', '--target-alias', 'x', '--topics', 'a'], /options.targetAlias must differ from the source alias/],
    [['replicate', '--source', LIVE, '--target', LIVE, '--topics', 'a'], /options.naming must be "prefix" when source and target are the same cluster/],
    [['replicate', '--source', LIVE, '--target', DOWN, '--topics', 'a', '--lag-threshold', 'soon'], /--lag-threshold must be a duration/],
    [['replicate', '--source', LIVE, '--target', DOWN, '--topics', 'a', '--naming', 'mirror'], /Allowed choices are keep, prefix/],
    [['replicate', '--source', LIVE, '--target', DOWN, '--topics', 'a', '--topics-regex', 'b'], /cannot be combined/],
    [['replicate', '--source', LIVE, '--target', DOWN, '--topics', 'a', '--webhook', 'http://127.0.0.1:1/x'], /needs options.lagThresholdMs/],
    [['failover', '--target', LIVE, '--group', 'g'], /--source is required/],
    [['bogus'], /unknown command/],
  ])('exits 2 with a message naming the problem for %j', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('reads clusters from the config file and environment, and never prints credentials', async () => {
    const r = await runCli(['replicate', '--source', LIVE, '--target', DOWN, '--topics', 'a', '--metrics-port', 'x'], 10_000, {
      AGENTTRACE_TARGET_KAFKA_SASL_PASSWORD: 's3cret-pw',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('s3cret-pw');
  });

  it('says which cluster is unreachable and where (exit 4 for either), without credentials', async () => {
    const [src, dst] = await Promise.all([
      runCli(['replicate', '--source', DOWN, '--target', LIVE, '--topics', 'agent-events'], 40_000),
      runCli(['replicate', '--source', LIVE, '--target', DOWN2, '--topics', 'agent-events', '--target-alias', 'eu-west-1'], 40_000, {
        AGENTTRACE_TARGET_KAFKA_SASL_USERNAME: 'mirror',
        AGENTTRACE_TARGET_KAFKA_SASL_PASSWORD: 'hunter2-secret',
      }),
    ]);
    expect(src.code).toBe(4);
    expect(src.stderr).toMatch(new RegExp(`source cluster "source".*${DOWN}`));
    expect(dst.code).toBe(4);
    expect(dst.stderr).toMatch(new RegExp(`target cluster "eu-west-1".*${DOWN2}`));
    expect(dst.stderr).not.toContain('hunter2-secret');
    for (const r of [src, dst]) expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('exits 3 when a topic named with --topics is missing on the source', async () => {
    const missing = uniqueName('km-missing');
    const r = await runCli(['replicate', '--source', LIVE, '--source-alias', 'a', '--target', LIVE, '--target-alias', 'b', '--naming', 'prefix', '--topics', missing], 30_000);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`source cluster "a"`);
    expect(r.stderr).toContain(`no topic "${missing}"`);
  }, 40_000);

  it('failover exits 8 when there are no checkpoints for the source alias', async () => {
    const alias = uniqueName('km-none');
    const r = await runCli(['failover', '--source', alias, '--target', LIVE, '--group', 'session-dashboard'], 30_000);
    expect(r.code).toBe(8);
    expect(r.stderr).toContain(`kafmirror.checkpoints.${alias}`);
  }, 40_000);
});

describe('kafmirror with a SASL source cluster', () => {
  const NAME = 'mirror-sasl';
  let info: ClusterInfo;
  let sasl: string;
  const cleanup: Array<[string, string[]]> = [];

  beforeAll(async () => {
    info = await startCluster(NAME, 23095, 1, ['--sasl']);
    sasl = `127.0.0.1:${23095 + 200}`;
  }, 120_000);

  afterAll(async () => {
    for (const [topic, brokers] of cleanup) await deleteTopic(topic, brokers);
    await stopCluster(NAME);
  }, 60_000);

  const saslEnv = (password: string) => ({
    AGENTTRACE_SOURCE_KAFKA_SASL_MECHANISM: 'PLAIN',
    AGENTTRACE_SOURCE_KAFKA_SASL_USERNAME: info.sasl!.username,
    AGENTTRACE_SOURCE_KAFKA_SASL_PASSWORD: password,
  });

  it('exits 5 and says the source refused the credentials, without printing them', async () => {
    const r = await runCli(['replicate', '--source', sasl, '--source-alias', 'secure', '--target', LIVE, '--target-alias', 'main', '--topics', 'agent-events'], 40_000, saslEnv('not-the-password-42'));
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/source cluster "secure".*127\.0\.0\.1:23295 \(sasl_plaintext\): authentication failure/);
    expect(r.stderr).toContain('AGENTTRACE_SOURCE_KAFKA_');
    expect(r.stderr).not.toContain('not-the-password-42');
  }, 60_000);

  it('reads topic settings over SASL/PLAIN, and a wrong password is an error that does not contain it', async () => {
    const topic = uniqueName('km-sasl-cfg');
    const plain = [`127.0.0.1:${info.port}`];
    cleanup.push([topic, plain]);
    await createTopic(topic, 1, plain, { 'retention.ms': '5400000', 'cleanup.policy': 'compact' });
    const conn = { brokers: [sasl], sasl: { mechanism: 'PLAIN' as const, username: info.sasl!.username, password: info.sasl!.password } };
    expect(await describeTopicConfigs(conn, topic)).toEqual({ configs: { 'retention.ms': '5400000', 'cleanup.policy': 'compact' } });
    const wrong = 'wrong-pw-' + uniqueName('x');
    const err = await describeTopicConfigs({ ...conn, sasl: { ...conn.sasl, password: wrong } }, topic).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/rejected the SASL credentials/);
    expect((err as Error).message).not.toContain(wrong);
    // SCRAM is spoken now; this broker offers PLAIN only, which the error says, without the password.
    const scram = await describeTopicConfigs({ ...conn, sasl: { ...conn.sasl, mechanism: 'SCRAM-SHA-256' as const } }, topic).catch((e: unknown) => e as Error);
    expect(scram).toBeInstanceOf(Error);
    expect((scram as Error).message).toMatch(/SASL SCRAM-SHA-256/);
    expect((scram as Error).message).not.toContain(info.sasl!.password);
  });

  it('mirrors from a SASL cluster with the credentials from AGENTTRACE_SOURCE_KAFKA_*', async () => {
    const topic = uniqueName('km-sasl');
    const alias = uniqueName('sec').replace(/[^a-z0-9-]/g, '');
    // Plain listener for the test's own setup; kafmirror only gets the SASL one.
    const plain = [`127.0.0.1:${info.port}`];
    cleanup.push([topic, plain], [`${alias}.${topic}`, stack.brokers], [`kafmirror.offsets.${alias}`, stack.brokers]);
    await createTopic(topic, 2, plain, { 'retention.ms': '7200000' });
    await produceRaw(topic, Array.from({ length: 20 }, () => ({ key: 's', value: JSON.stringify(makeEvent()) })), plain);
    const run = spawnCli(['replicate', '--source', sasl, '--source-alias', alias, '--target', LIVE, '--target-alias', 'main', '--topics', topic, '--naming', 'prefix'], saslEnv(info.sasl!.password));
    try {
      // The copy topic appears once kafmirror has started; consumeAll returns [] until then.
      const copies = await eventually('copies on the target', async () => {
        const got = await consumeAll(`${alias}.${topic}`, { count: 20, timeoutMs: 3_000 });
        return got.length >= 20 ? got : undefined;
      }, 30_000, 300);
      expect(copies).toHaveLength(20);
    } finally {
      run.child.kill('SIGTERM');
    }
    expect((await run.exited).code).toBe(0);
    // The topic's own settings were read over SASL/PLAIN and given to the copy.
    expect(run.output()).not.toMatch(/could not read the source topic settings|is not supported/);
    expect(await describeTopicConfigs(kafkaConn(stack.brokers), `${alias}.${topic}`)).toEqual({ configs: { 'retention.ms': '7200000' } });
    expect(run.output()).not.toContain(info.sasl!.password);
  }, 60_000);
});
