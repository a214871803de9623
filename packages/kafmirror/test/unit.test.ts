import { describe, expect, it } from 'vitest';
import { OptionsError } from '@agenttrace/common';
import {
  HEADER_SOURCE_CLUSTER,
  LagAlarm,
  OffsetMap,
  cameFrom,
  decodeDescribeConfigs,
  encodeDescribeConfigs,
  isMirrorable,
  readProvenance,
  resolveCluster,
  resolveReplicatorOptions,
  targetTopicName,
  timeLagMs,
  withProvenance,
  type ReplicatorOptions,
} from '../src/index.js';
import { decodeSaslError, encodeSaslHandshake, encodeSaslPlainAuthenticate } from '../src/topic-configs.js';

const base: ReplicatorOptions = {
  source: { brokers: ['127.0.0.1:1'] },
  target: { brokers: ['127.0.0.1:2'] },
  sourceAlias: 'us-east-1',
  targetAlias: 'eu-west-1',
  topics: ['agent-events'],
};

describe('OffsetMap', () => {
  it('translates a committed source offset to the copy of the first mirrored record at or after it', () => {
    const m = new OffsetMap(10);
    // Source 10..14 mirrored to 100..104 (one transaction), 15 skipped, 16..17 to 106..107 (marker at 105).
    [10, 11, 12, 13, 14].forEach((s, i) => m.add(s, 100 + i));
    m.add(16, 106);
    m.add(17, 107);
    expect(m.translate(10)).toBe(100);
    expect(m.translate(13)).toBe(103);
    expect(m.translate(15)).toBe(106); // the skipped record has no copy: resume at the next one
    expect(m.translate(16)).toBe(106);
    expect(m.translate(18)).toBe(108); // caught up: the next copy goes after the last one
    expect(m.translate(25)).toBe(108);
    expect(m.translate(9)).toBeUndefined(); // mirrored before this run: unknown, never guessed
  });

  it('forgets old pairs beyond its capacity and refuses what it forgot', () => {
    const m = new OffsetMap(0, 100);
    for (let s = 0; s < 1000; s++) m.add(s, s * 2);
    expect(m.size).toBeLessThanOrEqual(125);
    expect(m.translate(999)).toBe(1998);
    expect(m.translate(900)).toBe(1800);
    expect(m.translate(100)).toBeUndefined();
  });

  it('is empty-safe', () => {
    expect(new OffsetMap(0).translate(0)).toBeUndefined();
  });
});

describe('provenance and naming', () => {
  it('keeps or prefixes topic names', () => {
    expect(targetTopicName('agent-events', 'keep', 'us-east-1')).toBe('agent-events');
    expect(targetTopicName('agent-events', 'prefix', 'us-east-1')).toBe('us-east-1.agent-events');
  });

  it('never mirrors internal topics, its own, or copies of the target', () => {
    expect(isMirrorable('agent-events', 'eu')).toBe(true);
    expect(isMirrorable('__consumer_offsets', 'eu')).toBe(false);
    expect(isMirrorable('kafmirror.offsets.us', 'eu')).toBe(false);
    expect(isMirrorable('eu.agent-events', 'eu')).toBe(false);
  });

  it('appends provenance after the original headers and detects records that came from a cluster', () => {
    const original = [{ a: Buffer.from('1') }, { a: Buffer.from('2') }];
    const h = withProvenance(original, 'us', 't', 3, 42);
    expect(h.slice(0, 2)).toEqual(original);
    expect(readProvenance(h)).toEqual({ cluster: 'us', topic: 't', partition: 3, offset: 42 });
    expect(cameFrom(h, 'us')).toBe(true);
    expect(cameFrom(h, 'eu')).toBe(false);
    expect(cameFrom(undefined, 'us')).toBe(false);
    // Two hops keep both: a record from us via eu must not go back to us from anywhere.
    const twoHops = withProvenance(h, 'eu', 't', 3, 7);
    expect(cameFrom(twoHops, 'us')).toBe(true);
    expect(cameFrom([{ [HEADER_SOURCE_CLUSTER]: Buffer.from('us') }], 'us')).toBe(true);
  });
});

describe('lag', () => {
  it('is zero when caught up and bounded by the last mirrored record or the last caught-up moment', () => {
    expect(timeLagMs(0, 10_000, 1_000, undefined)).toBe(0);
    expect(timeLagMs(5, 10_000, 1_000, undefined)).toBe(9_000);
    expect(timeLagMs(5, 10_000, 1_000, 9_500)).toBe(500);
    expect(timeLagMs(5, 10_000, undefined, undefined)).toBe(0);
    // The first waiting record's timestamp, when known, is exact.
    expect(timeLagMs(5, 10_000, undefined, undefined, 4_000)).toBe(6_000);
    expect(timeLagMs(0, 10_000, undefined, undefined, 4_000)).toBe(0);
  });

  it('alerts once above the threshold and recovers once', () => {
    const a = new LagAlarm(10_000);
    expect(a.update(5_000)).toBeUndefined();
    expect(a.update(12_000)).toBe('alert');
    expect(a.update(30_000)).toBeUndefined();
    expect(a.alerting).toBe(true);
    expect(a.update(10_000)).toBe('recovered');
    expect(a.update(1_000)).toBeUndefined();
  });
});

describe('options', () => {
  it('fills defaults', () => {
    const o = resolveReplicatorOptions(base);
    expect(o.naming).toBe('keep');
    expect(o.offsetsTopic).toBe('kafmirror.offsets.us-east-1');
    expect(o.checkpointsTopic).toBe('kafmirror.checkpoints.us-east-1');
  });

  it.each([
    [{ targetAlias: 'us-east-1' }, 'options.targetAlias'],
    [{ topics: undefined }, 'options.topics'],
    [{ topicsRegex: 'a.*' }, 'options.topics'],
    [{ topics: undefined, topicsRegex: '(' }, 'options.topicsRegex'],
    [{ naming: 'mirror' }, 'options.naming'],
    [{ maxBatchRecords: 0 }, 'options.maxBatchRecords'],
    [{ webhookUrl: 'http://x' }, 'options.webhookUrl'],
    [{ lagThresholdMs: 1000, webhookUrl: 'ftp://x' }, 'options.webhookUrl'],
    [{ source: { brokers: ['nohostport'] } }, 'options.source.brokers'],
    [{ sourceAlias: 'bad alias' }, 'options.sourceAlias'],
  ])('rejects %j naming %s', (patch, option) => {
    let caught: unknown;
    try {
      resolveReplicatorOptions({ ...base, ...(patch as Partial<ReplicatorOptions>) });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(OptionsError);
    expect((caught as OptionsError).option).toBe(option);
  });
});

describe('clusters', () => {
  const file = { clusters: { 'us-east-1': { brokers: ['k1:9092', 'k2:9092'] } } };

  it('reads a broker list or an alias, and takes SASL from the role-prefixed environment', () => {
    const env = { AGENTTRACE_SOURCE_KAFKA_SASL_USERNAME: 'u', AGENTTRACE_SOURCE_KAFKA_SASL_PASSWORD: 'p', AGENTTRACE_SOURCE_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512' };
    const s = resolveCluster('source', 'us-east-1', undefined, env, file);
    expect(s.alias).toBe('us-east-1');
    expect(s.conn.brokers).toEqual(['k1:9092', 'k2:9092']);
    expect(s.conn.sasl).toEqual({ mechanism: 'SCRAM-SHA-512', username: 'u', password: 'p' });
    const t = resolveCluster('target', '10.0.0.1:9092,10.0.0.2:9092', undefined, {}, file);
    expect(t).toEqual({ alias: 'target', conn: { brokers: ['10.0.0.1:9092', '10.0.0.2:9092'] } });
    expect(resolveCluster('target', undefined, 'dr', { AGENTTRACE_TARGET_BROKERS: 'h:1' }, {}).conn.brokers).toEqual(['h:1']);
  });

  it('names the flag and the known aliases when an alias is unknown', () => {
    expect(() => resolveCluster('target', 'eu-west-9', undefined, {}, file)).toThrow(/--target "eu-west-9" is neither .* \(known: us-east-1\)/);
    expect(() => resolveCluster('source', undefined, undefined, {}, {})).toThrow(/--source is required/);
  });
});

describe('DescribeConfigs codec', () => {
  it('encodes a v1 request for one topic', () => {
    const req = encodeDescribeConfigs('agent-events', 7, 'c');
    expect(req.readInt32BE(0)).toBe(req.length - 4);
    expect(req.readInt16BE(4)).toBe(32); // api key
    expect(req.readInt16BE(6)).toBe(1); // version
    expect(req.readInt32BE(8)).toBe(7);
    expect(req.includes(Buffer.from('agent-events'))).toBe(true);
  });

  it('keeps only topic-level values of the mirrored settings', () => {
    const parts: Buffer[] = [];
    const i8 = (v: number) => Buffer.from([v]);
    const i16 = (v: number) => Buffer.from([(v >> 8) & 0xff, v & 0xff]);
    const i32 = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeInt32BE(v);
      return b;
    };
    const str = (s: string) => Buffer.concat([i16(Buffer.byteLength(s)), Buffer.from(s)]);
    const entry = (name: string, value: string, source: number) => Buffer.concat([str(name), str(value), i8(0), i8(source), i8(0), i32(0)]);
    parts.push(i32(7), i32(0), i32(1), i16(0), i16(0xffff), i8(2), str('t'), i32(3));
    parts.push(entry('retention.ms', '1000', 1), entry('cleanup.policy', 'delete', 5), entry('unrelated.setting', 'x', 1));
    expect(decodeDescribeConfigs(Buffer.concat(parts))).toEqual({ configs: { 'retention.ms': '1000' } });
  });

  it('frames SASL/PLAIN as SaslHandshake v1 and SaslAuthenticate v0', () => {
    const hs = encodeSaslHandshake('PLAIN', 1, 'c');
    expect(hs.readInt32BE(0)).toBe(hs.length - 4);
    expect([hs.readInt16BE(4), hs.readInt16BE(6), hs.readInt32BE(8)]).toEqual([17, 1, 1]);
    expect(hs.subarray(-7).toString('latin1')).toBe('\u0000\u0005PLAIN');
    const auth = encodeSaslPlainAuthenticate('alice', 'pw', 2, 'c');
    expect([auth.readInt16BE(4), auth.readInt16BE(6), auth.readInt32BE(8)]).toEqual([36, 0, 2]);
    // header (4 + 2 + 2 + 4 + 2 + 1 = 15 bytes), then the token as bytes: length and "\0alice\0pw".
    expect(auth.readInt32BE(15)).toBe(9);
    expect(auth.subarray(19).toString()).toBe('\u0000alice\u0000pw');
  });

  it('reads the error code and message of SASL responses', () => {
    const ok = Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
    expect(decodeSaslError(ok, 'authenticate')).toEqual({ code: 0 });
    const msg = Buffer.from('Authentication failed: Invalid username or password');
    const failed = Buffer.concat([Buffer.from([0, 0, 0, 2, 0, 58]), Buffer.from([0, msg.length]), msg, Buffer.from([0, 0, 0, 0])]);
    expect(decodeSaslError(failed, 'authenticate')).toEqual({ code: 58, message: msg.toString() });
    expect(decodeSaslError(Buffer.from([0, 0, 0, 1, 0, 33, 0, 0, 0, 0]), 'handshake')).toEqual({ code: 33 });
  });
});
