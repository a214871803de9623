import type KafkaLib from '@confluentinc/kafka-javascript';
import { createRequire } from 'node:module';
import type { GlobalConfig, LibrdKafkaError } from '@confluentinc/kafka-javascript';
import { connect } from 'node:net';
import { AgentTraceError, OptionsError } from './errors.js';

const requireCjs = createRequire(import.meta.url);
let kafkaLib: typeof KafkaLib | undefined;
/**
 * The Kafka client binding, loaded on first use: importing this package must not load it, so the
 * tracer's offload worker (a worker thread, where this native addon cannot be loaded) can use
 * the package's S3 helpers.
 */
export function Kafka(): typeof KafkaLib {
  return (kafkaLib ??= requireCjs('@confluentinc/kafka-javascript') as typeof KafkaLib);
}

export type SecurityProtocol = 'plaintext' | 'ssl' | 'sasl_plaintext' | 'sasl_ssl';
export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

/** How to reach a Kafka cluster. Credentials come from config or env and are never printed. */
export interface KafkaConnectionOptions {
  brokers: string[];
  clientId?: string;
  securityProtocol?: SecurityProtocol;
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
  ssl?: { caLocation?: string; certificateLocation?: string; keyLocation?: string; keyPassword?: string; verifyHostname?: boolean };
  /** Further librdkafka properties, passed through verbatim. */
  rdkafka?: Record<string, string | number | boolean>;
}

const PROTOCOLS: readonly SecurityProtocol[] = ['plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'];
const MECHANISMS: readonly SaslMechanism[] = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'];

/**
 * Reads a connection from environment variables (`AGENTTRACE_BROKERS` and `AGENTTRACE_KAFKA_*`);
 * `prefix` lets one process hold two clusters (kafmirror's source and target).
 */
export function kafkaConnectionFromEnv(env: NodeJS.ProcessEnv = process.env, prefix = 'AGENTTRACE_'): Partial<KafkaConnectionOptions> {
  const out: Partial<KafkaConnectionOptions> = {};
  const brokers = env[`${prefix}BROKERS`];
  if (brokers) out.brokers = brokers.split(',').map((b) => b.trim()).filter(Boolean);
  const proto = env[`${prefix}KAFKA_SECURITY_PROTOCOL`];
  if (proto) out.securityProtocol = proto.toLowerCase() as SecurityProtocol;
  const mech = env[`${prefix}KAFKA_SASL_MECHANISM`];
  const user = env[`${prefix}KAFKA_SASL_USERNAME`];
  const pass = env[`${prefix}KAFKA_SASL_PASSWORD`];
  if (mech || user || pass) out.sasl = { mechanism: (mech ?? 'PLAIN').toUpperCase() as SaslMechanism, username: user ?? '', password: pass ?? '' };
  // Only the variables that are set: callers lay these over a config file's TLS settings, and an
  // undefined CA location would otherwise erase the file's.
  const ssl: NonNullable<KafkaConnectionOptions['ssl']> = {};
  const caLocation = env[`${prefix}KAFKA_SSL_CA_LOCATION`];
  const certificateLocation = env[`${prefix}KAFKA_SSL_CERT_LOCATION`];
  const keyLocation = env[`${prefix}KAFKA_SSL_KEY_LOCATION`];
  const keyPassword = env[`${prefix}KAFKA_SSL_KEY_PASSWORD`];
  if (caLocation !== undefined) ssl.caLocation = caLocation;
  if (certificateLocation !== undefined) ssl.certificateLocation = certificateLocation;
  if (keyLocation !== undefined) ssl.keyLocation = keyLocation;
  if (keyPassword !== undefined) ssl.keyPassword = keyPassword;
  if (Object.keys(ssl).length > 0) out.ssl = ssl;
  return out;
}

/** Validates a connection; `where` names the option in messages (e.g. `options.kafka`). */
export function validateKafkaConnection(conn: Partial<KafkaConnectionOptions> | undefined, where: string): KafkaConnectionOptions {
  if (!conn || !Array.isArray(conn.brokers) || conn.brokers.length === 0) {
    throw new OptionsError(`${where}.brokers`, 'must be a non-empty array of "host:port" strings (or set AGENTTRACE_BROKERS)');
  }
  for (const b of conn.brokers) {
    if (typeof b !== 'string' || !/^[^\s:,]+:\d{1,5}$/.test(b)) {
      throw new OptionsError(`${where}.brokers`, `has "${String(b)}", which is not "host:port"`);
    }
  }
  if (conn.securityProtocol !== undefined && !PROTOCOLS.includes(conn.securityProtocol)) {
    throw new OptionsError(`${where}.securityProtocol`, `must be one of ${PROTOCOLS.join(', ')}, got "${String(conn.securityProtocol)}"`);
  }
  if (conn.sasl) {
    if (!MECHANISMS.includes(conn.sasl.mechanism)) {
      throw new OptionsError(`${where}.sasl.mechanism`, `must be one of ${MECHANISMS.join(', ')}, got "${String(conn.sasl.mechanism)}"`);
    }
    if (!conn.sasl.username) throw new OptionsError(`${where}.sasl.username`, 'is required when SASL is configured');
  }
  return conn as KafkaConnectionOptions;
}

/** The security protocol a connection uses: the one set, else implied by SASL or TLS settings. */
export function securityProtocolOf(conn: Pick<KafkaConnectionOptions, 'securityProtocol' | 'sasl' | 'ssl'>): SecurityProtocol {
  return conn.securityProtocol ?? (conn.sasl ? 'sasl_plaintext' : conn.ssl ? 'ssl' : 'plaintext');
}

/** librdkafka client properties for a connection. */
export function rdkafkaConfig(conn: KafkaConnectionOptions): GlobalConfig {
  const cfg: Record<string, string | number | boolean> = {
    'bootstrap.servers': conn.brokers.join(','),
    'client.id': conn.clientId ?? 'agenttrace',
    // Fail fast on a wrong address instead of retrying silently forever in the background.
    'socket.connection.setup.timeout.ms': 10_000,
    'log.connection.close': false,
  };
  const proto = securityProtocolOf(conn);
  // plaintext is librdkafka's default; leave it unset unless asked for.
  if (proto !== 'plaintext' || conn.securityProtocol) cfg['security.protocol'] = proto;
  if (conn.sasl) {
    cfg['sasl.mechanisms'] = conn.sasl.mechanism;
    cfg['sasl.username'] = conn.sasl.username;
    cfg['sasl.password'] = conn.sasl.password;
  }
  if (conn.ssl) {
    if (conn.ssl.caLocation) cfg['ssl.ca.location'] = conn.ssl.caLocation;
    if (conn.ssl.certificateLocation) cfg['ssl.certificate.location'] = conn.ssl.certificateLocation;
    if (conn.ssl.keyLocation) cfg['ssl.key.location'] = conn.ssl.keyLocation;
    if (conn.ssl.keyPassword) cfg['ssl.key.password'] = conn.ssl.keyPassword;
    if (conn.ssl.verifyHostname === false) cfg['ssl.endpoint.identification.algorithm'] = 'none';
  }
  Object.assign(cfg, conn.rdkafka ?? {});
  return cfg as GlobalConfig;
}

/**
 * How often a consumer refreshes the metadata of the topics it subscribed to. librdkafka's default
 * is 5 minutes, so a service started before its topic exists would idle that long after the topic
 * is created; one small metadata request every few seconds is the price of noticing in seconds.
 */
export const TOPIC_METADATA_REFRESH_MS = 5_000;

/** librdkafka settings of a group consumer: the connection's, plus the metadata refresh above (user overrides win). */
export function consumerConfig(conn: KafkaConnectionOptions): GlobalConfig {
  return rdkafkaConfig({ ...conn, rdkafka: { 'topic.metadata.refresh.interval.ms': TOPIC_METADATA_REFRESH_MS, ...conn.rdkafka } });
}

/** A group member of the services: what differs between them. */
export interface GroupConsumerOptions {
  /** librdkafka's client.id. */
  clientId: string;
  group: string;
  /** Static membership (`group.instance.id`). */
  instanceId?: string;
  /** What librdkafka may prefetch, KiB: all that sits in memory before the service takes it. */
  prefetchKbytes: number;
  /** Session timeout, ms; the heartbeat is sent four times in it (at least every 500 ms). */
  sessionTimeoutMs?: number;
}

/**
 * librdkafka settings of a service's group consumer (dashboard consumer, archiver, OTLP forwarder):
 * consumerConfig's, the group, and positions never committed or stored by librdkafka, because each
 * service stores its own (Redis, S3 objects, the backend's answer). The caller adds its assignment
 * strategy, rebalance_cb and user overrides.
 */
export function groupConsumerConfig(conn: KafkaConnectionOptions, o: GroupConsumerOptions): GlobalConfig {
  const cfg: Record<string, unknown> = {
    ...consumerConfig({ ...conn, clientId: o.clientId }),
    'group.id': o.group,
    'enable.auto.commit': false,
    'enable.auto.offset.store': false,
    'queued.max.messages.kbytes': o.prefetchKbytes,
  };
  if (o.instanceId) cfg['group.instance.id'] = o.instanceId;
  if (o.sessionTimeoutMs !== undefined) {
    cfg['session.timeout.ms'] = o.sessionTimeoutMs;
    cfg['heartbeat.interval.ms'] = Math.max(500, Math.floor(o.sessionTimeoutMs / 4));
  }
  return cfg as GlobalConfig;
}

/** A description of a connection that is safe to print: brokers and protocol, never credentials. */
export function describeKafka(conn: Pick<KafkaConnectionOptions, 'brokers' | 'securityProtocol' | 'sasl'>): string {
  const proto = conn.securityProtocol ?? (conn.sasl ? 'sasl_plaintext' : 'plaintext');
  return `Kafka at ${conn.brokers.join(',')} (${proto})`;
}

/**
 * True when a librdkafka error text says the SASL or TLS handshake failed (wrong credentials,
 * a certificate the CA does not vouch for). The broker address it starts with
 * ("sasl_ssl://host:port/bootstrap: ") is left out: it names the protocol, so a refused
 * connection to a SASL listener would otherwise read as an authentication failure.
 */
export function isSecurityProblem(text: string | undefined): boolean {
  if (text === undefined) return false;
  return /auth|sasl|ssl|certificate/i.test(text.replace(/^\S+:\/\/\S+?: /, ''));
}

/** An authentication or TLS failure stays the cause worth reporting over the "all brokers down" that follows it. */
export function stickyKafkaError(previous: string | undefined, next: string | undefined): string | undefined {
  if (isSecurityProblem(previous) && !isSecurityProblem(next)) return previous;
  return next ?? previous;
}

/** Error raised when Kafka cannot be reached or refuses a request. */
export class KafkaError extends AgentTraceError {}

/**
 * An error naming what failed and where (never credentials). `background` is the client's last
 * asynchronous error: librdkafka reports a failed SASL handshake there while the request itself
 * only says "transport failure".
 */
export function kafkaError(what: string, conn: KafkaConnectionOptions, err: unknown, background?: string): KafkaError {
  const e = err as Partial<LibrdKafkaError> & { message?: string };
  const code = typeof e.code === 'number' ? e.code : undefined;
  const authProblem = isSecurityProblem(background);
  const text = authProblem ? background! : (e.message ?? String(err));
  let hint = '';
  if (authProblem || /auth|sasl/i.test(text)) {
    // librdkafka's error events carry only the kind ("ssl error", "authentication failure"): say what to check.
    hint = /ssl|certificate/i.test(text)
      ? ' The TLS handshake failed: does AGENTTRACE_KAFKA_SSL_CA_LOCATION name the CA that signed the broker certificate, and does the certificate name the broker address? Check the SASL/TLS settings (AGENTTRACE_KAFKA_*).'
      : ' The broker refused the SASL login: check the mechanism, user name and password. Check the SASL/TLS settings (AGENTTRACE_KAFKA_*).';
    return new KafkaError('KAFKA_AUTH_FAILED', `${what} failed on ${describeKafka(conn)}: ${text}.${hint}`, { cause: err, retryable: false });
  }
  else if (code === -185 || /timed out|transport|connect|resolve|all broker/i.test(text)) {
    // librdkafka reports a rejected SASL handshake to requests as a transport failure.
    hint = conn.sasl
      ? ' Either the broker is not reachable or it rejected the SASL credentials (check AGENTTRACE_KAFKA_SASL_* and the address).'
      : ' Is the broker running and reachable from here?';
  }
  return new KafkaError('KAFKA_UNAVAILABLE', `${what} failed on ${describeKafka(conn)}: ${text}.${hint}`, {
    cause: err,
    retryable: e.isRetriable ?? true,
  });
}

/** What a TCP connection attempt to one broker address came to: undefined when it was accepted. */
function tcpProbe(address: string, timeoutMs: number): Promise<string | undefined> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address.trim());
  // An address this cannot read is left to librdkafka, which reports it in its own words.
  if (!m) return Promise.resolve(undefined);
  const [, host, port] = m;
  return new Promise((resolve) => {
    const socket = connect({ host: host!, port: Number(port) });
    const done = (problem: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => done(`did not answer within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const reason = err.code === 'ECONNREFUSED' ? 'refused the connection' : err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN' ? 'names an unknown host' : `failed: ${err.message}`;
      done(`${reason}${err.code && !err.message.includes(err.code) ? ` (${err.code})` : ''}`);
    });
  });
}

/**
 * Says why no bootstrap broker accepts a TCP connection, or undefined when one does. librdkafka
 * reports an unreachable cluster only when its own timeouts run out (about 10 s), while a refused
 * connection or an unknown host is known in milliseconds: command-line tools check this first so
 * the user hears at once which address is wrong. Passing proves only that something listens.
 */
export async function unreachableBrokers(conn: Pick<KafkaConnectionOptions, 'brokers'>, timeoutMs = 3000): Promise<string | undefined> {
  const problems = await Promise.all(conn.brokers.map((b) => tcpProbe(b, timeoutMs)));
  if (problems.some((p) => p === undefined)) return undefined;
  return conn.brokers.map((b, i) => `${b} ${problems[i]}`).join('; ');
}

/** A topic id as librdkafka's admin client returns it, in the canonical UUID form Kafka prints. */
export function uuidString(u: { mostSignificantBits: bigint; leastSignificantBits: bigint }): string {
  const hex = (v: bigint) => BigInt.asUintN(64, v).toString(16).padStart(16, '0');
  const h = hex(u.mostSignificantBits) + hex(u.leastSignificantBits);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
