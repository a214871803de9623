import { OtlpError } from './errors.js';

/**
 * OTLP trace requests (opentelemetry-proto, collector/trace/v1/trace_service.proto and
 * trace/v1/trace.proto) decoded into a flat list of spans. Protobuf is read straight off the
 * wire with only the fields the mapping uses; JSON follows the OTLP/JSON rules (lowerCamelCase
 * keys, hex trace and span ids, 64-bit integers as strings or numbers). Anything malformed throws
 * DECODE_FAILED naming where; nesting and counts are bounded so a hostile body cannot exhaust
 * the stack.
 */

export type AttrValue = string | number | boolean | null | AttrValue[] | { [key: string]: AttrValue };
export type Attributes = Record<string, AttrValue>;

export interface SpanEvent {
  timeMs: number;
  name: string;
  attributes: Attributes;
}

export interface OtlpSpan {
  /** Lower-case hex, 32 characters. */
  traceId: string;
  /** Lower-case hex, 16 characters. */
  spanId: string;
  /** Lower-case hex, or '' for a root span. */
  parentSpanId: string;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Attributes;
  events: SpanEvent[];
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
  resource: Attributes;
  scopeName: string;
}

/** Deepest AnyValue nesting accepted (arrays and key-value lists inside each other). */
const MAX_VALUE_DEPTH = 16;

function fail(where: string, problem: string): never {
  throw new OtlpError('DECODE_FAILED', `invalid OTLP request at ${where}: ${problem}`);
}

// ---------------------------------------------------------------------------------------------
// Protobuf

class Reader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;

  constructor(buf: Uint8Array, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  varint(where: string): number {
    if (this.pos < this.end && this.buf[this.pos]! < 0x80) return this.buf[this.pos++]!;
    // Up to 64 bits; values beyond 2^53 lose precision, which no field used here needs.
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) fail(where, 'truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    fail(where, 'varint longer than 10 bytes');
  }

  fixed64ms(where: string): number {
    if (this.pos + 8 > this.end) fail(where, 'truncated fixed64');
    const b = this.buf;
    const p = this.pos;
    const lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    const hi = (b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24)) >>> 0;
    this.pos += 8;
    // Nanoseconds to milliseconds without BigInt: hi * 2^32 / 1e6 + lo / 1e6.
    return hi * 4294.967296 + lo / 1e6;
  }

  double(where: string): number {
    if (this.pos + 8 > this.end) fail(where, 'truncated double');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  /** Where the last field read by `field()` starts. */
  start = 0;

  /** A length-delimited field: returns its [start, end). */
  bytes(where: string): [number, number] {
    const end = this.field(where);
    return [this.start, end];
  }

  /** A length-delimited field without an allocation (hot paths): returns its end, `start` its start. */
  field(where: string): number {
    const len = this.varint(where);
    const start = this.pos;
    if (len > this.end - start) fail(where, `length ${len} runs past the end of its message`);
    this.start = start;
    this.pos = start + len;
    return this.pos;
  }

  skip(wire: number, where: string): void {
    switch (wire) {
      case 0:
        this.varint(where);
        return;
      case 1:
        if (this.pos + 8 > this.end) fail(where, 'truncated fixed64');
        this.pos += 8;
        return;
      case 2:
        this.bytes(where);
        return;
      case 5:
        if (this.pos + 4 > this.end) fail(where, 'truncated fixed32');
        this.pos += 4;
        return;
      default:
        fail(where, `unsupported wire type ${wire}`);
    }
  }
}

/**
 * Strings are read with Buffer's UTF-8 decoder: TextDecoder costs microseconds per call, which
 * for a span's dozens of short strings dominated decoding. Invalid sequences become U+FFFD.
 */
function str(r: Reader, where: string): string {
  const e = r.field(where);
  const b = r.buf;
  // decodeProtobuf hands every reader a Buffer: no view object per string.
  return Buffer.isBuffer(b) ? b.toString('utf8', r.start, e) : Buffer.from(b.buffer, b.byteOffset + r.start, e - r.start).toString('utf8');
}

function hex(r: Reader, where: string): string {
  const [s, e] = r.bytes(where);
  return Buffer.from(r.buf.buffer, r.buf.byteOffset + s, e - s).toString('hex');
}

/** Iterates the fields of the message in [start, end). */
function fields(buf: Uint8Array, start: number, end: number, where: string, each: (field: number, wire: number, r: Reader) => void): void {
  const r = new Reader(buf, start, end);
  while (r.pos < r.end) {
    const tag = r.varint(where);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 0) fail(where, 'field number 0');
    const before = r.pos;
    each(field, wire, r);
    // A handler that did not consume the field (unknown, or a wire type it does not expect) skips it.
    if (r.pos === before) r.skip(wire, where);
  }
}

function expect(wire: number, want: number, where: string): void {
  if (wire !== want) fail(where, `wire type ${wire} where ${want} was expected`);
}

function anyValue(buf: Uint8Array, start: number, end: number, where: string, depth: number): AttrValue {
  if (depth > MAX_VALUE_DEPTH) fail(where, `values nested deeper than ${MAX_VALUE_DEPTH}`);
  // Hot path (every attribute of every span): a plain loop, no closure per message.
  const r = new Reader(buf, start, end);
  let value: AttrValue = null;
  while (r.pos < r.end) {
    const tag = r.varint(where);
    const wire = tag & 7;
    switch (tag >>> 3) {
      case 1:
        expect(wire, 2, where);
        value = str(r, where);
        break;
      case 2:
        expect(wire, 0, where);
        value = r.varint(where) !== 0;
        break;
      case 3: {
        expect(wire, 0, where);
        const v = r.varint(where);
        // int64 two's complement: values >= 2^63 are negative.
        value = v >= 2 ** 63 ? v - 2 ** 64 : v;
        break;
      }
      case 4:
        expect(wire, 1, where);
        value = r.double(where);
        break;
      case 5: {
        expect(wire, 2, where);
        const [s, e] = r.bytes(where);
        const arr: AttrValue[] = [];
        fields(buf, s, e, where, (f2, w2, r2) => {
          if (f2 !== 1) return;
          expect(w2, 2, where);
          const [s2, e2] = r2.bytes(where);
          arr.push(anyValue(buf, s2, e2, `${where}[${arr.length}]`, depth + 1));
        });
        value = arr;
        break;
      }
      case 6: {
        expect(wire, 2, where);
        const [s, e] = r.bytes(where);
        const obj: Attributes = {};
        fields(buf, s, e, where, (f2, w2, r2) => {
          if (f2 !== 1) return;
          expect(w2, 2, where);
          const [s2, e2] = r2.bytes(where);
          keyValue(buf, s2, e2, where, obj, depth + 1);
        });
        value = obj;
        break;
      }
      case 7: {
        expect(wire, 2, where);
        const [s, e] = r.bytes(where);
        value = Buffer.from(buf.buffer, buf.byteOffset + s, e - s).toString('base64');
        break;
      }
      default:
        if (tag >>> 3 === 0) fail(where, 'field number 0');
        r.skip(wire, where);
    }
  }
  return value;
}

function keyValue(buf: Uint8Array, start: number, end: number, where: string, into: Attributes, depth: number): void {
  const r = new Reader(buf, start, end);
  let key = '';
  let value: AttrValue = null;
  while (r.pos < r.end) {
    const tag = r.varint(where);
    const wire = tag & 7;
    const field = tag >>> 3;
    if (field === 1 && wire === 2) key = str(r, where);
    else if (field === 2 && wire === 2) {
      const e = r.field(where);
      value = anyValue(buf, r.start, e, where, depth);
    } else {
      if (field === 0) fail(where, 'field number 0');
      r.skip(wire, where);
    }
  }
  // Keys such as __proto__ become own properties, never the object's prototype.
  if (key === '__proto__') Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
  else into[key] = value;
}

function attributesField(r: Reader, where: string, into: Attributes): void {
  const e = r.field(where);
  keyValue(r.buf, r.start, e, where, into, 0);
}

function resource(buf: Uint8Array, start: number, end: number, where: string): Attributes {
  const attrs: Attributes = {};
  fields(buf, start, end, where, (field, wire, r) => {
    if (field === 1) {
      expect(wire, 2, where);
      attributesField(r, `${where}.attributes`, attrs);
    }
  });
  return attrs;
}

function spanEvent(buf: Uint8Array, start: number, end: number, where: string): SpanEvent {
  const ev: SpanEvent = { timeMs: 0, name: '', attributes: {} };
  fields(buf, start, end, where, (field, wire, r) => {
    if (field === 1) {
      expect(wire, 1, where);
      ev.timeMs = r.fixed64ms(where);
    } else if (field === 2) {
      expect(wire, 2, where);
      ev.name = str(r, `${where}.name`);
    } else if (field === 3) {
      expect(wire, 2, where);
      attributesField(r, `${where}.attributes`, ev.attributes);
    }
  });
  return ev;
}

function span(buf: Uint8Array, start: number, end: number, where: string, res: Attributes, scopeName: string): OtlpSpan {
  const sp: OtlpSpan = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    name: '',
    kind: 0,
    startMs: 0,
    endMs: 0,
    attributes: {},
    events: [],
    statusCode: 0,
    statusMessage: '',
    resource: res,
    scopeName,
  };
  let attrWhere: string | undefined;
  fields(buf, start, end, where, (field, wire, r) => {
    switch (field) {
      case 1:
        expect(wire, 2, where);
        sp.traceId = hex(r, `${where}.trace_id`);
        break;
      case 2:
        expect(wire, 2, where);
        sp.spanId = hex(r, `${where}.span_id`);
        break;
      case 4:
        expect(wire, 2, where);
        sp.parentSpanId = hex(r, `${where}.parent_span_id`);
        break;
      case 5:
        expect(wire, 2, where);
        sp.name = str(r, `${where}.name`);
        break;
      case 6:
        expect(wire, 0, where);
        sp.kind = r.varint(where);
        break;
      case 7:
        expect(wire, 1, where);
        sp.startMs = r.fixed64ms(`${where}.start_time_unix_nano`);
        break;
      case 8:
        expect(wire, 1, where);
        sp.endMs = r.fixed64ms(`${where}.end_time_unix_nano`);
        break;
      case 9:
        expect(wire, 2, where);
        // One string for every attribute of the span (it only shows in an error).
        attrWhere ??= `${where}.attributes`;
        attributesField(r, attrWhere, sp.attributes);
        break;
      case 11: {
        expect(wire, 2, where);
        const [s, e] = r.bytes(where);
        sp.events.push(spanEvent(buf, s, e, `${where}.events[${sp.events.length}]`));
        break;
      }
      case 15: {
        expect(wire, 2, where);
        const [s, e] = r.bytes(where);
        fields(buf, s, e, `${where}.status`, (f2, w2, r2) => {
          if (f2 === 2) {
            expect(w2, 2, `${where}.status`);
            sp.statusMessage = str(r2, `${where}.status.message`);
          } else if (f2 === 3) {
            expect(w2, 0, `${where}.status`);
            sp.statusCode = r2.varint(`${where}.status.code`);
          }
        });
        break;
      }
    }
  });
  return sp;
}

/** Decodes a protobuf ExportTraceServiceRequest. */
export function decodeProtobuf(request: Uint8Array): OtlpSpan[] {
  const body = Buffer.isBuffer(request) ? request : Buffer.from(request.buffer, request.byteOffset, request.byteLength);
  const out: OtlpSpan[] = [];
  let rsIndex = 0;
  fields(body, 0, body.length, 'ExportTraceServiceRequest', (field, wire, r) => {
    if (field !== 1) return;
    const rsWhere = `resource_spans[${rsIndex++}]`;
    expect(wire, 2, rsWhere);
    const [s, e] = r.bytes(rsWhere);
    let res: Attributes = {};
    const scopes: Array<[number, number]> = [];
    fields(body, s, e, rsWhere, (f2, w2, r2) => {
      if (f2 === 1) {
        expect(w2, 2, rsWhere);
        const [s2, e2] = r2.bytes(rsWhere);
        res = resource(body, s2, e2, `${rsWhere}.resource`);
      } else if (f2 === 2) {
        expect(w2, 2, rsWhere);
        scopes.push(r2.bytes(rsWhere));
      }
    });
    // The resource may come after its scope_spans on the wire: read it first.
    scopes.forEach(([s2, e2], si) => {
      const ssWhere = `${rsWhere}.scope_spans[${si}]`;
      let scopeName = '';
      const spans: Array<[number, number]> = [];
      fields(body, s2, e2, ssWhere, (f3, w3, r3) => {
        if (f3 === 1) {
          expect(w3, 2, ssWhere);
          const [s3, e3] = r3.bytes(ssWhere);
          fields(body, s3, e3, `${ssWhere}.scope`, (f4, w4, r4) => {
            if (f4 === 1) {
              expect(w4, 2, `${ssWhere}.scope`);
              scopeName = str(r4, `${ssWhere}.scope.name`);
            }
          });
        } else if (f3 === 2) {
          expect(w3, 2, ssWhere);
          spans.push(r3.bytes(ssWhere));
        }
      });
      spans.forEach(([s3, e3], i) => out.push(span(body, s3, e3, `${ssWhere}.spans[${i}]`, res, scopeName)));
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// JSON

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arr(v: unknown, where: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(where, 'expected an array');
  return v;
}

function jsonStr(v: unknown, where: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') fail(where, 'expected a string');
  return v;
}

function jsonHex(v: unknown, where: string): string {
  const s = jsonStr(v, where);
  if (s !== '' && !/^[0-9a-fA-F]*$/.test(s)) fail(where, 'expected a hex string (OTLP/JSON ids are hex, not base64)');
  return s.toLowerCase();
}

/** 64-bit integers arrive as strings or numbers. */
function jsonInt(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) return Number(v);
  fail(where, 'expected an integer');
}

function jsonNanosMs(v: unknown, where: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isFinite(v)) return v / 1e6;
  if (typeof v === 'string' && /^\d{1,20}$/.test(v)) {
    // Split to keep sub-millisecond digits without BigInt: ms = whole part + fraction.
    const ms = v.length > 6 ? Number(v.slice(0, -6)) : 0;
    return ms + Number(v.slice(-6)) / 1e6;
  }
  fail(where, 'expected a time in nanoseconds');
}

function jsonAny(v: unknown, where: string, depth: number): AttrValue {
  if (depth > MAX_VALUE_DEPTH) fail(where, `values nested deeper than ${MAX_VALUE_DEPTH}`);
  if (!isObj(v)) return null;
  if ('stringValue' in v) return jsonStr(v.stringValue, where);
  if ('boolValue' in v) {
    if (typeof v.boolValue !== 'boolean') fail(where, 'boolValue must be a boolean');
    return v.boolValue;
  }
  if ('intValue' in v) return jsonInt(v.intValue, where);
  if ('doubleValue' in v) {
    const d = v.doubleValue;
    if (typeof d === 'number') return d;
    if (typeof d === 'string' && d.trim() !== '' && !Number.isNaN(Number(d))) return Number(d);
    fail(where, 'doubleValue must be a number');
  }
  if ('arrayValue' in v) {
    const values = isObj(v.arrayValue) ? arr(v.arrayValue.values, where) : [];
    return values.map((x, i) => jsonAny(x, `${where}[${i}]`, depth + 1));
  }
  if ('kvlistValue' in v) {
    const obj: Attributes = {};
    const values = isObj(v.kvlistValue) ? arr(v.kvlistValue.values, where) : [];
    jsonAttrs(values, where, obj, depth + 1);
    return obj;
  }
  if ('bytesValue' in v) return jsonStr(v.bytesValue, where);
  return null;
}

function jsonAttrs(list: unknown[], where: string, into: Attributes, depth = 0): Attributes {
  list.forEach((kv, i) => {
    if (!isObj(kv)) fail(`${where}[${i}]`, 'expected a key-value object');
    const key = jsonStr(kv.key, `${where}[${i}].key`);
    const value = jsonAny(kv.value, `${where}[${i}].value`, depth);
    if (key === '__proto__') Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
    else into[key] = value;
  });
  return into;
}

/** Decodes an OTLP/JSON ExportTraceServiceRequest (already parsed). */
export function decodeJson(body: unknown): OtlpSpan[] {
  if (!isObj(body)) fail('/', 'expected a JSON object');
  const out: OtlpSpan[] = [];
  arr(body.resourceSpans, 'resourceSpans').forEach((rs, ri) => {
    const rsWhere = `resourceSpans[${ri}]`;
    if (!isObj(rs)) fail(rsWhere, 'expected an object');
    const res = isObj(rs.resource) ? jsonAttrs(arr(rs.resource.attributes, `${rsWhere}.resource.attributes`), `${rsWhere}.resource.attributes`, {}) : {};
    arr(rs.scopeSpans, `${rsWhere}.scopeSpans`).forEach((ss, si) => {
      const ssWhere = `${rsWhere}.scopeSpans[${si}]`;
      if (!isObj(ss)) fail(ssWhere, 'expected an object');
      const scopeName = isObj(ss.scope) ? jsonStr(ss.scope.name, `${ssWhere}.scope.name`) : '';
      arr(ss.spans, `${ssWhere}.spans`).forEach((s, i) => {
        const w = `${ssWhere}.spans[${i}]`;
        if (!isObj(s)) fail(w, 'expected an object');
        const status = isObj(s.status) ? s.status : {};
        out.push({
          traceId: jsonHex(s.traceId, `${w}.traceId`),
          spanId: jsonHex(s.spanId, `${w}.spanId`),
          parentSpanId: jsonHex(s.parentSpanId, `${w}.parentSpanId`),
          name: jsonStr(s.name, `${w}.name`),
          kind: typeof s.kind === 'number' ? s.kind : 0,
          startMs: jsonNanosMs(s.startTimeUnixNano, `${w}.startTimeUnixNano`),
          endMs: jsonNanosMs(s.endTimeUnixNano, `${w}.endTimeUnixNano`),
          attributes: jsonAttrs(arr(s.attributes, `${w}.attributes`), `${w}.attributes`, {}),
          events: arr(s.events, `${w}.events`).map((ev, ei) => {
            const ew = `${w}.events[${ei}]`;
            if (!isObj(ev)) fail(ew, 'expected an object');
            return { timeMs: jsonNanosMs(ev.timeUnixNano, `${ew}.timeUnixNano`), name: jsonStr(ev.name, `${ew}.name`), attributes: jsonAttrs(arr(ev.attributes, `${ew}.attributes`), `${ew}.attributes`, {}) };
          }),
          statusCode: typeof status.code === 'number' ? status.code : status.code === 'STATUS_CODE_ERROR' ? 2 : status.code === 'STATUS_CODE_OK' ? 1 : 0,
          statusMessage: jsonStr(status.message, `${w}.status.message`),
          resource: res,
          scopeName,
        });
      });
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Responses (ExportTraceServiceResponse and google.rpc.Status)

function writeVarint(out: number[], v: number): void {
  while (v > 127) {
    out.push((v % 128) | 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function lenField(out: number[], field: number, bytes: Uint8Array | number[]): void {
  writeVarint(out, (field << 3) | 2);
  writeVarint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

/** ExportTraceServiceResponse, with partial_success when some spans were rejected. */
export function encodeExportResponse(rejected: number, message: string): Buffer {
  if (rejected === 0 && message === '') return Buffer.alloc(0);
  const partial: number[] = [];
  if (rejected > 0) {
    writeVarint(partial, 1 << 3);
    writeVarint(partial, rejected);
  }
  if (message) lenField(partial, 2, Buffer.from(message));
  const out: number[] = [];
  lenField(out, 1, partial);
  return Buffer.from(out);
}

/** google.rpc.Status, the body OTLP/HTTP error responses carry. */
export function encodeStatus(code: number, message: string): Buffer {
  const out: number[] = [];
  writeVarint(out, 1 << 3);
  writeVarint(out, code);
  lenField(out, 2, Buffer.from(message));
  return Buffer.from(out);
}
