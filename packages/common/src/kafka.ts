import type KafkaLib from '@confluentinc/kafka-javascript';
import { createRequire } from 'node:module';
import type { GlobalConfig, IAdminClient, LibrdKafkaError, NewTopic } from '@confluentinc/kafka-javascript';
import { connect } from 'node:net';
import { AgentTraceError, OptionsError } from './errors.js';

const requireCjs = createRequire(import.meta.url);
let kafkaLib: typeof KafkaLib | undefined;
/**
 * The Kafka client binding, loaded on first use: importing this package must not load it, so the
 * tracer's offload worker (a worker thread, where this native addon cannot be loaded) can use
 * the package's S3 helpers.
 */
function Kafka(): typeof KafkaLib {
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

/**
 * Follows a client's asynchronous errors and returns the one worth reporting so far: pass it as
 * `kafkaError`'s `background`, since a refused SASL login or TLS handshake fails a connect only
 * as "broker transport failure".
 */
export function watchKafkaErrors(client: { on(event: 'event.error', listener: (err: { message?: string }) => void): unknown }): () => string | undefined {
  let background: string | undefined;
  client.on('event.error', (err) => {
    background = stickyKafkaError(background, err.message);
  });
  return () => background;
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

/**
 * `kafkaError` for a failed connect of a producer, which sees nothing of a refused SASL login or
 * TLS handshake before it is polled (after connect): with SASL or TLS configured, an admin client
 * (whose errors arrive at once) asks the cluster, so the user hears "refused" instead of
 * "unreachable". Costs one short round trip, and only on a failure.
 */
export async function explainConnectFailure(what: string, conn: KafkaConnectionOptions, err: unknown, background?: string): Promise<KafkaError> {
  const first = kafkaError(what, conn, err, background);
  if (first.code === 'KAFKA_AUTH_FAILED' || securityProtocolOf(conn) === 'plaintext') return first;
  const admin = new KafkaAdmin(conn);
  try {
    await admin.listTopics(5_000);
    return first;
  } catch (probe) {
    if ((probe as { code?: unknown }).code !== 'KAFKA_AUTH_FAILED') return first;
    return new KafkaError('KAFKA_AUTH_FAILED', `${what} failed: ${(probe as Error).message}`, { cause: probe, retryable: false });
  } finally {
    admin.close();
  }
}

/** A small promise wrapper around librdkafka's admin client. */
export class KafkaAdmin {
  readonly #conn: KafkaConnectionOptions;
  readonly #client: IAdminClient;
  /** The client's last asynchronous error: a rejected SASL login or TLS handshake is only reported there. */
  #background: string | undefined;
  #closed = false;

  constructor(conn: KafkaConnectionOptions) {
    this.#conn = conn;
    this.#client = Kafka().AdminClient.create(
      { ...rdkafkaConfig(conn), 'client.id': `${conn.clientId ?? 'agenttrace'}-admin` },
      {
        'event.error': (e: { message?: string }) => {
          this.#background = stickyKafkaError(this.#background, e.message);
        },
      },
    );
  }

  #call<T>(what: string, fn: (cb: (err: LibrdKafkaError | null | undefined, result?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, result) => {
        if (err) return reject(kafkaError(what, this.#conn, err, this.#background));
        // A request that succeeded means the login works now: an old refusal must not colour a later failure.
        this.#background = undefined;
        resolve(result as T);
      });
    });
  }

  listTopics(timeoutMs = 10_000): Promise<string[]> {
    return this.#call('listing topics', (cb) => this.#client.listTopics({ timeout: timeoutMs }, cb));
  }

  /** Partition count of a topic, or undefined when it does not exist. */
  async partitionCount(topic: string, timeoutMs = 10_000): Promise<number | undefined> {
    try {
      const [d] = await this.#call<Array<{ partitions: unknown[]; error?: unknown }>>(`describing topic ${topic}`, (cb) =>
        this.#client.describeTopics([topic], { timeout: timeoutMs }, cb),
      );
      if (!d || d.error) return undefined;
      return d.partitions.length;
    } catch (err) {
      if (/unknown topic|UNKNOWN_TOPIC/i.test(String((err as Error).message))) return undefined;
      throw err;
    }
  }

  /** Creates the topic if it does not exist; returns true when it was created. */
  async ensureTopic(topic: NewTopic, timeoutMs = 15_000): Promise<boolean> {
    try {
      await this.#call<void>(`creating topic ${topic.topic}`, (cb) => this.#client.createTopic(topic, timeoutMs, cb));
      return true;
    } catch (err) {
      const cause = (err as { cause?: { code?: number } }).cause;
      if (cause?.code === 36 || /already exists/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  async deleteTopic(topic: string, timeoutMs = 15_000): Promise<void> {
    await this.#call<void>(`deleting topic ${topic}`, (cb) => this.#client.deleteTopic(topic, timeoutMs, cb));
  }

  /** Low and high watermark per partition (high = next offset to be written). */
  async watermarks(topic: string, partitions: number[], timeoutMs = 10_000): Promise<Map<number, { low: number; high: number }>> {
    const { OffsetSpec } = Kafka();
    const ask = (spec: InstanceType<typeof OffsetSpec>) =>
      this.#call<Array<{ partition: number; offset: number }>>(`listing offsets of ${topic}`, (cb) =>
        this.#client.listOffsets(
          partitions.map((p) => ({ topic, partition: p, offset: spec })),
          { timeout: timeoutMs },
          cb,
        ),
      );
    const [lows, highs] = await Promise.all([ask(OffsetSpec.EARLIEST), ask(OffsetSpec.LATEST)]);
    const out = new Map<number, { low: number; high: number }>();
    for (const h of highs) out.set(h.partition, { low: 0, high: Number(h.offset) });
    for (const l of lows) {
      const entry = out.get(l.partition);
      if (entry) entry.low = Number(l.offset);
    }
    return out;
  }

  /** First offset whose timestamp is at or after `timestampMs` (the high watermark when none is). */
  async offsetForTime(topic: string, partition: number, timestampMs: number, timeoutMs = 10_000): Promise<number> {
    const { OffsetSpec } = Kafka();
    const [r] = await this.#call<Array<{ partition: number; offset: number }>>(`looking up offsets of ${topic}`, (cb) =>
      this.#client.listOffsets([{ topic, partition, offset: new OffsetSpec(timestampMs) }], { timeout: timeoutMs }, cb),
    );
    return Number(r?.offset ?? -1);
  }

  get client(): IAdminClient {
    return this.#client;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.disconnect();
  }
}
