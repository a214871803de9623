import Kafka from '@confluentinc/kafka-javascript';
import type { KafkaConsumer, LibrdKafkaError, NewTopic, Producer, TopicPartitionOffset } from '@confluentinc/kafka-javascript';
import {
  KafkaAdmin,
  connectClient as connectKafkaClient,
  consumeBatch,
  describeKafka,
  disconnectWithTimeout,
  nativeTeardowns,
  kafkaError,
  rdkafkaConfig,
  type KafkaConnectionOptions,
} from '@agenttrace/common';
import { KafmirrorError } from './errors.js';

export type Role = 'source' | 'target';

/** One of the two clusters kafmirror talks to. */
export interface Cluster {
  role: Role;
  alias: string;
  conn: KafkaConnectionOptions;
}

/** A description safe to print: role, alias, brokers and protocol, never credentials. */
export function describeCluster(c: Cluster): string {
  return `${c.role} cluster "${c.alias}" (${describeKafka(c.conn)})`;
}

const AUTH_CODES = new Set([29 /* topic authorization */, 30 /* group authorization */, 31 /* cluster authorization */, 58 /* SASL auth */, -169 /* local authentication */]);

/**
 * Turns a client error into a KafmirrorError that says which cluster failed and where; an
 * authentication problem is told apart from an unreachable broker (librdkafka reports a rejected
 * SASL handshake only through the client's background error).
 */
export function clusterError(c: Cluster, what: string, err: unknown, background?: string): KafmirrorError {
  if (err instanceof KafmirrorError) return err;
  const code = (err as Partial<LibrdKafkaError>).code;
  const base = kafkaError(what, c.conn, err, background);
  const prefix = c.role === 'source' ? 'AGENTTRACE_SOURCE_KAFKA_' : 'AGENTTRACE_TARGET_KAFKA_';
  const message = `${c.role} cluster "${c.alias}": ${base.message.replaceAll('AGENTTRACE_KAFKA_', prefix)}`;
  if (base.code === 'KAFKA_AUTH_FAILED' || (typeof code === 'number' && AUTH_CODES.has(code))) {
    return new KafmirrorError('AUTH_FAILED', message, { cause: err, retryable: false });
  }
  return new KafmirrorError(c.role === 'source' ? 'SOURCE_UNAVAILABLE' : 'TARGET_UNAVAILABLE', message, { cause: err, retryable: base.retryable });
}

/** librdkafka settings for a cluster, with a client id naming the role. */
export function clientConfig(c: Cluster, suffix: string): Record<string, string | number | boolean> {
  return { ...(rdkafkaConfig(c.conn) as Record<string, string | number | boolean>), 'client.id': `${c.conn.clientId ?? 'kafmirror'}-${c.role}-${suffix}` };
}

export type { TopicInfo } from '@agenttrace/common';

/** The shared admin client, reporting failures as errors of the cluster it talks to. */
export class ClusterAdmin extends KafkaAdmin {
  readonly cluster: Cluster;

  constructor(cluster: Cluster) {
    super(cluster.conn, { clientId: String(clientConfig(cluster, 'admin')['client.id']), wrapError: (what, err, background) => clusterError(cluster, what, err, background) });
    this.cluster = cluster;
  }

  /** Creates the topic unless it exists; true when it was created. */
  createTopic(topic: NewTopic, timeoutMs = 15_000): Promise<boolean> {
    return this.ensureTopic(topic, timeoutMs);
  }
}

export function connectClient(client: Producer | KafkaConsumer, c: Cluster, what: string, timeoutMs = 15_000): Promise<void> {
  return connectKafkaClient(client, { timeoutMs, wrapError: (err, background) => clusterError(c, what, err, background) }).then(() => undefined);
}

export { consumeBatch };

/** Native teardowns still running (common's disconnectWithTimeout tracks them); the CLI waits for them before it exits. */
export { nativeTeardowns };

export function disconnect(client: Producer | KafkaConsumer, timeoutMs = 5_000): Promise<void> {
  return disconnectWithTimeout(client, timeoutMs);
}

/** librdkafka's incrementalAssign/Unassign exist at run time but are missing from its typings. */
export function incrementalAssign(consumer: KafkaConsumer, parts: TopicPartitionOffset[]): void {
  (consumer as unknown as { incrementalAssign(p: TopicPartitionOffset[]): void }).incrementalAssign(parts);
}

export const promisify0 = (fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> =>
  new Promise<void>((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));

/**
 * A consumer for reading single records at chosen offsets (assign only: it never joins its group
 * or commits). `groupName` only labels it on the broker.
 */
export async function openRecordReader(cluster: Cluster, clientSuffix: string, groupName: string, what: string, consumeTimeoutMs: number): Promise<KafkaConsumer> {
  const reader = new Kafka.KafkaConsumer(
    { ...clientConfig(cluster, clientSuffix), 'group.id': groupName, 'enable.auto.commit': false, 'isolation.level': 'read_committed' },
    { 'auto.offset.reset': 'earliest' },
  );
  await connectClient(reader, cluster, what);
  reader.setDefaultConsumeTimeout(consumeTimeoutMs);
  return reader;
}
