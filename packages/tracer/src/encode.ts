import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { AgentEvent } from '@agenttrace/contract';
import { errorMessage, uploadOffload, type S3Options } from '@agenttrace/common';
import { snapshot } from './snapshot.js';
import type { RedactScreen, StringRedactor } from './redact.js';

export interface EncodeOptions {
  redactString: StringRedactor | undefined;
  redactKeys: Set<string>;
  /** When set, says which strings the redactor could change (see RedactScreen); unset means any. */
  mightRedact?: RedactScreen | undefined;
  maxEventBytes: number;
  maxRecordBytes: number;
  s3: S3Options | undefined;
  s3Client: () => S3Client;
}

export interface Encoded {
  value: Buffer;
  /** Fields went to S3. */
  offloaded: boolean;
  /** Set when an oversized event could not be offloaded (it was sent inline, marked). */
  problem?: string;
}

/** Deeper than this, values are cut (the contract's readers reject records nested deeper than 64). */
const MAX_DEPTH = 48;
/** Fields that stay inline whatever their size: readers filter and aggregate on them. */
const KEEP_INLINE = new Set(['tool', 'model', 'latency_ms', 'input_tokens', 'output_tokens', 'cost_usd', 'action', 'subagent_id', 'name', 'parent_event_id', 'confidence']);
const PREVIEW_CHARS = 1024;

/**
 * A JSON.stringify replacer doing, in the same pass as serialization, what snapshot() does with
 * a copy: redaction and stand-ins for values JSON cannot carry. Cycles and over-deep values still
 * make JSON.stringify throw; the caller then falls back to snapshot(), which handles them.
 */
function makeReplacer(redactString: StringRedactor | undefined, redactKeys: Set<string>): (this: unknown, key: string, value: unknown) => unknown {
  const keyed = redactKeys.size > 0;
  return function replacer(key, value) {
    if (keyed && key !== '' && redactKeys.has(key.toLowerCase())) return '[REDACTED:key]';
    switch (typeof value) {
      case 'string':
        return redactString ? redactString(value, key) : value;
      case 'object':
        if (value === null || Array.isArray(value)) return value;
        // JSON writes a boxed string as the string itself: redact it as one.
        if (value instanceof String) return redactString ? redactString(value.valueOf(), key) : value;
        if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), v]));
        if (value instanceof Set) return [...value];
        if (value instanceof Error) return value.stack ? { name: value.name, message: value.message, stack: value.stack } : { name: value.name, message: value.message };
        if (ArrayBuffer.isView(value)) return { type: value.constructor.name, bytes: value.byteLength };
        return value;
      case 'number':
        return Number.isFinite(value) ? value : String(value);
      case 'bigint':
        return `${value.toString()}n`;
      case 'function':
        return `[Function ${(value as { name?: string }).name || 'anonymous'}]`;
      case 'symbol':
        return value.toString();
      default:
        return value;
    }
  };
}

const replacers = new WeakMap<EncodeOptions, ReturnType<typeof makeReplacer>>();

const q = JSON.stringify;
const plainPrototype = Object.prototype;

/**
 * True when plain JSON.stringify of `value` writes exactly what the redacting replacer would: no
 * key to redact, no string the redactor could change, nothing JSON cannot carry as is (Maps,
 * Errors, class instances, toJSON, BigInt, non-finite numbers...). Any doubt answers false and the
 * value takes the replacer. This keeps V8's fast JSON path for the common step (#2).
 */
function plainIsExact(value: unknown, screen: RedactScreen, redactKeys: Set<string>, depth: number): boolean {
  switch (typeof value) {
    case 'string':
      return !screen(value);
    case 'number':
      return Number.isFinite(value);
    case 'boolean':
    case 'undefined':
      return true;
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth > MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!plainIsExact(value[i], screen, redactKeys, depth + 1)) return false;
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if ((proto !== plainPrototype && proto !== null) || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  const keyed = redactKeys.size > 0;
  for (const key of Object.keys(value)) {
    if (keyed && redactKeys.has(key.toLowerCase())) return false;
    if (!plainIsExact((value as Record<string, unknown>)[key], screen, redactKeys, depth + 1)) return false;
  }
  return true;
}

/**
 * The envelope is the tracer's own typed fields, so only payload and context go through the
 * replacer, and only when they hold something it could change: a replacer function takes V8 off
 * its fast JSON path for every key it is called on (#2). Keys follow the contract's order.
 */
function stringifyWith(event: AgentEvent, opts: EncodeOptions, replacer: (this: unknown, key: string, value: unknown) => unknown): string {
  const screen = opts.mightRedact;
  const plainPayload = screen !== undefined && plainIsExact(event.payload, screen, opts.redactKeys, 0);
  const plainContext = screen !== undefined && plainIsExact(event.context, screen, opts.redactKeys, 0);
  // Nothing to redact anywhere (the common step): one plain call writes the same bytes.
  if (plainPayload && plainContext) return JSON.stringify(event);
  const payload = (plainPayload ? JSON.stringify(event.payload) : JSON.stringify(event.payload, replacer)) as string | undefined;
  const context = (plainContext ? JSON.stringify(event.context) : JSON.stringify(event.context, replacer)) as string | undefined;
  if (payload === undefined || context === undefined || payload[0] !== '{' || context[0] !== '{') throw new TypeError('payload and context must be objects');
  return (
    `{"schema_version":${q(event.schema_version)},"event_id":${q(event.event_id)},"session_id":${q(event.session_id)},"agent_id":${q(event.agent_id)}` +
    `,"emitter_id":${q(event.emitter_id)},"seq":${q(event.seq)},"timestamp":${q(event.timestamp)},"event_type":${q(event.event_type)},"status":${q(event.status)}` +
    `,"payload":${payload},"context":${context}${event.offload === undefined ? '' : `,"offload":${q(event.offload)}`}}`
  );
}

function serialize(event: AgentEvent, opts: EncodeOptions): { json: string; event: AgentEvent | undefined } {
  let replacer = replacers.get(opts);
  if (replacer === undefined && (opts.redactString || opts.redactKeys.size > 0)) {
    replacer = makeReplacer(opts.redactString, opts.redactKeys);
    replacers.set(opts, replacer);
  }
  try {
    // Without redaction, plain JSON.stringify is the fast path; BigInt and cycles throw and take
    // the careful path below (functions, Maps and Sets are then left to JSON's own rules).
    return { json: replacer ? stringifyWith(event, opts, replacer) : JSON.stringify(event), event: undefined };
  } catch {
    // A cycle, or nesting deep enough to exhaust the stack: take the careful path.
    const snapOpts = { redactString: opts.redactString, redactKeys: opts.redactKeys, maxDepth: MAX_DEPTH };
    const copy: AgentEvent = {
      ...event,
      payload: snapshot(event.payload, snapOpts, 'payload') as AgentEvent['payload'],
      context: snapshot(event.context, snapOpts, 'context') as AgentEvent['context'],
    };
    return { json: JSON.stringify(copy), event: copy };
  }
}

/**
 * Turns an event into the record value: redacted and JSON-safe, with the biggest fields moved to
 * S3 when the event is over the size cap. Synchronous unless an upload is needed.
 */
export function encodeEvent(event: AgentEvent, opts: EncodeOptions): Encoded | Promise<Encoded> {
  const { json } = serialize(event, opts);
  // Cheap upper bound first: UTF-8 is at most 3 bytes per UTF-16 unit.
  if (json.length * 3 <= opts.maxEventBytes || Buffer.byteLength(json) <= opts.maxEventBytes) return { value: Buffer.from(json), offloaded: false };
  // Work on the serialized (redacted, JSON-safe) form from here on.
  return shrink(JSON.parse(json) as AgentEvent, opts);
}

interface Field {
  path: string;
  holder: Record<string, unknown>;
  key: string;
  json: string;
}

function bigFields(event: AgentEvent): Field[] {
  const fields: Field[] = [];
  for (const [section, holder] of [['payload', event.payload], ['context', event.context]] as const) {
    for (const [key, value] of Object.entries(holder)) {
      if (KEEP_INLINE.has(key) || value === undefined) continue;
      const json = JSON.stringify(value);
      if (json.length > 256) fields.push({ path: `${section}.${key}`, holder: holder as Record<string, unknown>, key, json });
    }
  }
  return fields.sort((a, b) => b.json.length - a.json.length);
}

const size = (e: AgentEvent) => Buffer.byteLength(JSON.stringify(e));

async function shrink(event: AgentEvent, opts: EncodeOptions): Promise<Encoded> {
  const fields = bigFields(event);
  const moved: string[] = [];
  let problem: string | undefined;
  if (opts.s3) {
    const s3 = opts.s3Client();
    for (const f of fields) {
      if (size(event) <= opts.maxEventBytes) break;
      try {
        f.holder[f.key] = await uploadOffload(s3, opts.s3, f.json);
        moved.push(f.path);
      } catch (err) {
        problem = `upload to S3 bucket "${opts.s3.bucket}" failed: ${errorMessage(err)}`;
        break;
      }
    }
  } else {
    problem = 'no S3 bucket is configured for oversized fields (options.s3 or AGENTTRACE_S3_BUCKET)';
  }
  if (!problem) {
    event.offload = { fields: moved };
    return { value: Buffer.from(JSON.stringify(event)), offloaded: moved.length > 0 };
  }
  // Offload impossible: send inline and marked; only over Kafka's record limit are fields cut.
  const kept = fields.filter((f) => !moved.includes(f.path)).map((f) => f.path);
  const truncated: string[] = [];
  for (const f of fields) {
    if (size(event) <= opts.maxRecordBytes) break;
    if (moved.includes(f.path)) continue;
    f.holder[f.key] = {
      $truncated: { size: Buffer.byteLength(f.json), sha256: createHash('sha256').update(f.json).digest('hex'), preview: f.json.slice(0, PREVIEW_CHARS) },
    };
    truncated.push(f.path);
  }
  const failed = truncated.length > 0 ? `${problem}; truncated to fit Kafka's record limit: ${truncated.join(', ')}` : problem;
  event.offload = { fields: [...moved, ...kept], failed };
  return {
    value: Buffer.from(JSON.stringify(event)),
    offloaded: moved.length > 0,
    problem: `event ${event.event_id} is over ${opts.maxEventBytes} bytes and ${failed}; it was sent inline, marked`,
  };
}
