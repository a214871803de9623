import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Admin, AdminOptions } from '@platformatic/kafka';
import { KafkaError, describeKafka, kafkaError, securityProtocolOf, type KafkaConnectionOptions } from './kafka.js';

/**
 * Admin requests librdkafka's admin client does not offer (the cluster id, DescribeConfigs),
 * through the pure-JavaScript @platformatic/kafka client. Its TLS goes through node:tls with
 * full certificate-chain verification, and it speaks SASL PLAIN and SCRAM-SHA-256/512: the same
 * connection settings as every other client of the project, mapped once here.
 */

/** @platformatic/kafka options for a connection: brokers, TLS (chain always verified), SASL. */
export function protocolAdminOptions(conn: KafkaConnectionOptions, timeoutMs: number): AdminOptions {
  const protocol = securityProtocolOf(conn);
  const opts: AdminOptions = {
    clientId: `${conn.clientId ?? 'agenttrace'}-admin`,
    bootstrapBrokers: conn.brokers,
    connectTimeout: timeoutMs,
    timeout: timeoutMs,
    retries: 1,
    // The project's clients create topics explicitly; a metadata request must not create one.
    autocreateTopics: false,
  };
  if (protocol === 'ssl' || protocol === 'sasl_ssl') {
    const ssl = conn.ssl ?? {};
    opts.tls = {
      ca: ssl.caLocation ? readFileSync(ssl.caLocation) : undefined,
      cert: ssl.certificateLocation ? readFileSync(ssl.certificateLocation) : undefined,
      key: ssl.keyLocation ? readFileSync(ssl.keyLocation) : undefined,
      passphrase: ssl.keyPassword,
      // verifyHostname: false skips only the name check (librdkafka's
      // ssl.endpoint.identification.algorithm=none); the chain is still verified.
      rejectUnauthorized: true,
      ...(ssl.verifyHostname === false ? { checkServerIdentity: () => undefined } : {}),
    };
    // SNI with the broker's name (brokers behind SNI routing need it); an IP address is not a valid SNI name.
    opts.tlsServerName = conn.brokers.every((b) => isIP(b.slice(0, b.lastIndexOf(':')).replace(/^\[|\]$/g, '')) === 0);
  }
  if ((protocol === 'sasl_plaintext' || protocol === 'sasl_ssl') && conn.sasl) {
    opts.sasl = { mechanism: conn.sasl.mechanism, username: conn.sasl.username, password: conn.sasl.password };
  }
  return opts;
}

/** Every message of an error and its nested causes (AggregateError lists): the library nests the real reason. */
function flatMessage(err: unknown): string {
  const seen = new Set<unknown>();
  const parts: string[] = [];
  const walk = (e: unknown, depth: number) => {
    if (e === undefined || e === null || seen.has(e) || depth > 4) return;
    seen.add(e);
    const m = (e as { message?: unknown }).message;
    if (typeof m === 'string' && m.length > 0 && !parts.includes(m)) parts.push(m);
    for (const inner of (e as { errors?: unknown[] }).errors ?? []) walk(inner, depth + 1);
    walk((e as { cause?: unknown }).cause, depth + 1);
  };
  walk(err, 0);
  return parts.join(': ') || String(err);
}

/** True when the error (or one nested in it) is the client's authentication failure. */
function isAuthFailure(err: unknown, depth = 0): boolean {
  if (err === undefined || err === null || depth > 4) return false;
  if ((err as { code?: unknown }).code === 'PLT_KFK_AUTHENTICATION') return true;
  return ((err as { errors?: unknown[] }).errors ?? []).some((e) => isAuthFailure(e, depth + 1)) || isAuthFailure((err as { cause?: unknown }).cause, depth + 1);
}

/**
 * The client is loaded on first use: importing it takes about ten times as long as librdkafka's
 * binding (0.25 s against 0.02 s on an idle machine, seconds on a loaded one), and most commands
 * never need it.
 */
let client: Promise<typeof import('@platformatic/kafka')> | undefined;
const loadClient = () => (client ??= import('@platformatic/kafka'));

/** Starts loading the client now, so a service's start-up overlaps it with its network waits. */
export function preloadProtocolAdmin(): void {
  loadClient().catch(() => undefined);
}

async function withAdmin<T>(conn: KafkaConnectionOptions, what: string, timeoutMs: number, fn: (admin: Admin, lib: typeof import('@platformatic/kafka')) => Promise<T>): Promise<T> {
  const lib = await loadClient();
  const admin = new lib.Admin(protocolAdminOptions(conn, timeoutMs));
  try {
    return await fn(admin, lib);
  } catch (err) {
    if (isAuthFailure(err)) {
      // The messages name the mechanism at most; the password never reaches them.
      const text = `the broker rejected the SASL credentials or does not offer SASL ${conn.sasl?.mechanism ?? '(none configured)'} (${flatMessage(err)})`;
      throw new KafkaError('KAFKA_AUTH_FAILED', `${what} failed on ${describeKafka(conn)}: ${text}. Check the SASL/TLS settings (AGENTTRACE_KAFKA_*).`, { cause: err, retryable: false });
    }
    throw kafkaError(what, conn, new Error(flatMessage(err), { cause: err }));
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** Which cluster this is, and which incarnation of a topic on it. */
export interface KafkaTopicIdentity {
  /** The cluster id every broker of the cluster reports (KRaft: fixed when the cluster was formatted). */
  clusterId: string;
  /** The topic's id (a UUID given when it was created); undefined when the topic does not exist. */
  topicId: string | undefined;
  /** Partition count; undefined when the topic does not exist. */
  partitions: number | undefined;
}

const UNKNOWN_TOPIC = /unknown topic|UNKNOWN_TOPIC_OR_PARTITION/i;

/**
 * The cluster id and the topic id of `topic`. A topic recreated under the same name gets a new
 * id, and a topic of the same name on another cluster has a different one: stored positions
 * stamped with both can tell whether they belong to what is being read.
 */
export async function describeTopicIdentity(conn: KafkaConnectionOptions, topic: string, timeoutMs = 10_000): Promise<KafkaTopicIdentity> {
  const r = await describeTopicIdentities(conn, [topic], timeoutMs);
  const t = r.topics.get(topic);
  return { clusterId: r.clusterId, topicId: t?.topicId, partitions: t?.partitions };
}

/** The cluster id and the ids of several topics in one connection; topics that do not exist are left out. */
export async function describeTopicIdentities(
  conn: KafkaConnectionOptions,
  topics: string[],
  timeoutMs = 10_000,
): Promise<{ clusterId: string; topics: Map<string, { topicId: string; partitions: number }> }> {
  return withAdmin(conn, `reading the cluster id and the ids of topic ${topics.join(', ')}`, timeoutMs, async (admin) => {
    const cluster = await admin.metadata({ topics: [] });
    const out = new Map<string, { topicId: string; partitions: number }>();
    const read = async (names: string[]) => {
      const md = await admin.metadata({ topics: names, forceUpdate: true });
      for (const name of names) {
        const t = md.topics.get(name);
        if (t) out.set(name, { topicId: t.id, partitions: t.partitionsCount });
      }
    };
    try {
      if (topics.length > 0) await read(topics);
    } catch (err) {
      if (!UNKNOWN_TOPIC.test(flatMessage(err))) throw err;
      // One missing topic fails the whole request: ask topic by topic to keep the others.
      for (const name of topics) {
        try {
          await read([name]);
        } catch (inner) {
          if (!UNKNOWN_TOPIC.test(flatMessage(inner))) throw inner;
        }
      }
    }
    return { clusterId: cluster.id, topics: out };
  });
}

/** Settings set on the topic itself (dynamic topic configs), by name; broker defaults are left out. */
export async function describeTopicConfigs(conn: KafkaConnectionOptions, topic: string, timeoutMs = 10_000): Promise<Record<string, string>> {
  return withAdmin(conn, `reading the settings of topic ${topic}`, timeoutMs, async (admin, { ConfigResourceTypes, ConfigSources }) => {
    const [d] = await admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic }], includeSynonyms: false, includeDocumentation: false });
    const out: Record<string, string> = {};
    for (const c of d?.configs ?? []) {
      if (c.configSource === ConfigSources.TOPIC_CONFIG && c.value !== null && c.value !== undefined) out[c.name] = c.value;
    }
    return out;
  });
}
