import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import { describeTopicConfigs as describeWithProtocolAdmin, securityProtocolOf, type KafkaConnectionOptions } from '@agenttrace/common';

/**
 * Topic settings worth carrying to the DR copy: they decide how long and how the copy keeps data.
 * Only values set on the topic itself are copied; broker defaults stay the target's own.
 */
export const MIRRORED_CONFIGS = [
  'cleanup.policy',
  'retention.ms',
  'retention.bytes',
  'max.message.bytes',
  'min.compaction.lag.ms',
  'max.compaction.lag.ms',
  'delete.retention.ms',
  'segment.ms',
  'segment.bytes',
  'compression.type',
  'message.timestamp.type',
] as const;

const DYNAMIC_TOPIC_CONFIG = 1;

const i8 = (v: number) => Buffer.from([v & 0xff]);
const i16 = (v: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
};
const i32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};
const str = (s: string) => {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([i16(bytes.length), bytes]);
};

/** A size-prefixed request with a v1 request header (api key, version, correlation id, client id). */
function frame(apiKey: number, version: number, correlationId: number, clientId: string, body: Buffer[]): Buffer {
  const payload = Buffer.concat([i16(apiKey), i16(version), i32(correlationId), str(clientId), ...body]);
  return Buffer.concat([i32(payload.length), payload]);
}

/** Encodes a DescribeConfigs v1 request for one topic (the admin client in use has no describeConfigs). */
export function encodeDescribeConfigs(topic: string, correlationId: number, clientId: string): Buffer {
  return frame(32, 1, correlationId, clientId, [i32(1), i8(2 /* TOPIC */), str(topic), i32(-1 /* all configs */), i8(0 /* no synonyms */)]);
}

/** SaslHandshake v1 (then SaslAuthenticate frames carry the exchange). */
export function encodeSaslHandshake(mechanism: string, correlationId: number, clientId: string): Buffer {
  return frame(17, 1, correlationId, clientId, [str(mechanism)]);
}

/** SaslAuthenticate v0 with the PLAIN message: authzid (empty), username, password, NUL-separated. */
export function encodeSaslPlainAuthenticate(username: string, password: string, correlationId: number, clientId: string): Buffer {
  const token = Buffer.from(`\u0000${username}\u0000${password}`, 'utf8');
  return frame(36, 0, correlationId, clientId, [i32(token.length), token]);
}

/** The error code (and message) of a SaslHandshake v1 or SaslAuthenticate v0 response body. */
export function decodeSaslError(buf: Buffer, kind: 'handshake' | 'authenticate'): { code: number; message?: string } {
  const code = buf.readInt16BE(4); // after the correlation id
  if (kind === 'handshake' || code === 0) return { code };
  const n = buf.readInt16BE(6);
  return n < 0 ? { code } : { code, message: buf.toString('utf8', 8, 8 + n) };
}

/** Decodes a DescribeConfigs v1 response body (after the size prefix) into topic-level settings. */
export function decodeDescribeConfigs(buf: Buffer): { error?: number; configs: Record<string, string> } {
  let at = 0;
  const i8 = () => buf.readInt8(at++);
  const i16 = () => {
    const v = buf.readInt16BE(at);
    at += 2;
    return v;
  };
  const i32 = () => {
    const v = buf.readInt32BE(at);
    at += 4;
    return v;
  };
  const nstr = (): string | null => {
    const n = i16();
    if (n < 0) return null;
    const s = buf.toString('utf8', at, at + n);
    at += n;
    return s;
  };
  i32(); // correlation id
  i32(); // throttle time
  const results = i32();
  const configs: Record<string, string> = {};
  let error: number | undefined;
  for (let r = 0; r < results; r++) {
    const code = i16();
    if (code !== 0) error = code;
    nstr(); // error message
    i8(); // resource type
    nstr(); // resource name
    const n = i32();
    for (let c = 0; c < n; c++) {
      const name = nstr() ?? '';
      const value = nstr();
      i8(); // read only
      const source = i8();
      i8(); // sensitive
      const syn = i32();
      for (let s = 0; s < syn; s++) {
        nstr();
        nstr();
        i8();
      }
      if (source === DYNAMIC_TOPIC_CONFIG && value !== null && (MIRRORED_CONFIGS as readonly string[]).includes(name)) configs[name] = value;
    }
  }
  return error === undefined ? { configs } : { error, configs };
}

function open(conn: KafkaConnectionOptions, broker: string, timeoutMs: number): Promise<Socket> {
  const i = broker.lastIndexOf(':');
  const host = broker.slice(0, i);
  const port = Number(broker.slice(i + 1));
  const protocol = securityProtocolOf(conn);
  const useTls = protocol === 'ssl' || protocol === 'sasl_ssl';
  return new Promise<Socket>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    const sock = useTls
      ? tlsConnect({
          host,
          port,
          servername: host,
          ca: conn.ssl?.caLocation ? readFileSync(conn.ssl.caLocation) : undefined,
          cert: conn.ssl?.certificateLocation ? readFileSync(conn.ssl.certificateLocation) : undefined,
          key: conn.ssl?.keyLocation ? readFileSync(conn.ssl.keyLocation) : undefined,
          passphrase: conn.ssl?.keyPassword,
          // The chain is always verified. verifyHostname: false skips only the name check, as
          // librdkafka's ssl.endpoint.identification.algorithm=none does.
          rejectUnauthorized: true,
          ...(conn.ssl?.verifyHostname === false ? { checkServerIdentity: () => undefined } : {}),
        })
      : netConnect({ host, port });
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`no answer from ${broker} within ${timeoutMs} ms`)));
    sock.once('error', onError);
    sock.once(useTls ? 'secureConnect' : 'connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/** Writes one request and resolves with its response body (after the size prefix). */
function request(sock: Socket, broker: string, frameBytes: Buffer): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('close', onClose);
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        cleanup();
        resolve(buf.subarray(4, 4 + buf.readInt32BE(0)));
      }
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      cleanup();
      reject(new Error(`${broker} closed the connection`));
    };
    sock.on('data', onData);
    sock.once('error', onError);
    sock.once('close', onClose);
    sock.write(frameBytes);
  });
}

/** SASL/PLAIN over the Kafka protocol (SaslHandshake v1, then SaslAuthenticate v0). */
async function authenticatePlain(sock: Socket, broker: string, username: string, password: string): Promise<void> {
  const hs = decodeSaslError(await request(sock, broker, encodeSaslHandshake('PLAIN', 1, CLIENT_ID)), 'handshake');
  if (hs.code !== 0) throw new Error(`${broker} does not accept SASL PLAIN (error code ${hs.code})`);
  const auth = decodeSaslError(await request(sock, broker, encodeSaslPlainAuthenticate(username, password, 2, CLIENT_ID)), 'authenticate');
  // The broker's message names the user at most; the password never leaves this function.
  if (auth.code !== 0) throw new Error(`${broker} rejected the SASL credentials${auth.message ? `: ${auth.message}` : ''}`);
}

const CLIENT_ID = 'kafmirror-configs';

/**
 * Settings set on a topic (among MIRRORED_CONFIGS). librdkafka's admin client has no
 * DescribeConfigs. Without SASL or with SASL/PLAIN this speaks just enough of the Kafka protocol:
 * TLS when the connection uses it (chain always verified), SASL/PLAIN, then DescribeConfigs v1.
 * SCRAM goes through the shared protocol admin of @agenttrace/common (a maintained client);
 * that client is not used for every case because loading it costs about ten times librdkafka's
 * binding (seconds on a loaded machine), paid on the start-up that creates a target topic.
 */
export async function describeTopicConfigs(conn: KafkaConnectionOptions, topic: string, timeoutMs = 10_000): Promise<{ configs: Record<string, string> }> {
  const protocol = securityProtocolOf(conn);
  const usesSasl = protocol === 'sasl_plaintext' || protocol === 'sasl_ssl';
  if (usesSasl && conn.sasl?.mechanism !== 'PLAIN') {
    const all = await describeWithProtocolAdmin(conn, topic, timeoutMs);
    const configs: Record<string, string> = {};
    for (const name of MIRRORED_CONFIGS) if (all[name] !== undefined) configs[name] = all[name];
    return { configs };
  }
  const sasl = usesSasl ? conn.sasl : undefined;
  let lastErr: unknown;
  for (const broker of conn.brokers) {
    let sock: Socket | undefined;
    try {
      sock = await open(conn, broker, timeoutMs);
      if (sasl) await authenticatePlain(sock, broker, sasl.username, sasl.password);
      const reply = await request(sock, broker, encodeDescribeConfigs(topic, 3, CLIENT_ID));
      const { error, configs } = decodeDescribeConfigs(reply);
      if (error !== undefined) throw new Error(`broker error code ${error}`);
      return { configs };
    } catch (err) {
      lastErr = err;
    } finally {
      sock?.destroy();
    }
  }
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}
