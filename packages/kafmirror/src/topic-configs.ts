import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync } from 'node:fs';
import type { KafkaConnectionOptions } from '@agenttrace/common';

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

/** Encodes a DescribeConfigs v1 request for one topic (the admin client in use has no describeConfigs). */
export function encodeDescribeConfigs(topic: string, correlationId: number, clientId: string): Buffer {
  const parts: Buffer[] = [];
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
  parts.push(i16(32), i16(1), i32(correlationId), str(clientId));
  parts.push(i32(1), i8(2 /* TOPIC */), str(topic), i32(-1 /* all configs */), i8(0 /* no synonyms */));
  const body = Buffer.concat(parts);
  return Buffer.concat([i32(body.length), body]);
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
  const useTls = conn.securityProtocol === 'ssl' || (conn.securityProtocol === undefined && conn.ssl !== undefined && !conn.sasl);
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
          rejectUnauthorized: conn.ssl?.verifyHostname !== false,
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

/**
 * Settings set on a topic (among MIRRORED_CONFIGS). Returns `unsupported` for SASL connections,
 * where this minimal client does not authenticate; the caller then creates the copy with the
 * target's defaults and says so.
 */
export async function describeTopicConfigs(conn: KafkaConnectionOptions, topic: string, timeoutMs = 10_000): Promise<{ configs: Record<string, string> } | { unsupported: string }> {
  if (conn.sasl || conn.securityProtocol === 'sasl_plaintext' || conn.securityProtocol === 'sasl_ssl') {
    return { unsupported: 'reading topic settings over SASL is not supported; the copy gets the target defaults' };
  }
  let lastErr: unknown;
  for (const broker of conn.brokers) {
    let sock: Socket | undefined;
    try {
      sock = await open(conn, broker, timeoutMs);
      const s = sock;
      const reply = await new Promise<Buffer>((resolve, reject) => {
        let buf = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) resolve(buf.subarray(4, 4 + buf.readInt32BE(0)));
        });
        s.once('error', reject);
        s.once('close', () => reject(new Error(`${broker} closed the connection`)));
        s.write(encodeDescribeConfigs(topic, 1, 'kafmirror-configs'));
      });
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
