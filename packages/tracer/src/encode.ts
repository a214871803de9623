import type { S3Client } from '@aws-sdk/client-s3';
import type { AgentEvent } from '@agenttrace/contract';
import type { S3Options } from '@agenttrace/common';
import { snapshot } from './snapshot.js';
import { shrinkJson, type OffloadProblemCode, type ShrinkOptions, type ShrinkResult } from './shrink.js';
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
  /** Bound on the uploads of one event, ms (default 10000). */
  offloadTimeoutMs?: number;
  /** Set when S3 is not to be tried for the next oversized event, and why. */
  skipS3?: () => ShrinkOptions['skipS3'];
  /** Runs the shrinking elsewhere (the offload worker); by default it runs on this thread. */
  shrink?: (json: string, opts: ShrinkOptions) => Promise<ShrinkResult>;
  /**
   * Set (with `shrink` and `mightRedact`) when the redaction is the built-in one: strings longer
   * than BIG_STRING_CHARS are then redacted by `shrink`, off this thread, when they make the event
   * oversized (#14). Must rebuild the same redactor there.
   */
  deferredRedact?: ShrinkOptions['redact'];
}

/** Strings at least this long are redacted in the offload worker when it is in use (see deferredRedact). */
export const BIG_STRING_CHARS = 64 * 1024;

export interface Encoded {
  value: Buffer;
  /** Fields went to S3. */
  offloaded: boolean;
  /** Set when an oversized event could not be offloaded (it was sent inline, marked). */
  problem?: string;
  problemCode?: OffloadProblemCode;
}

/** Deeper than this, values are cut (the contract's readers reject records nested deeper than 64). */
const MAX_DEPTH = 48;

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

/** Returned by redactPlain for a value plain JSON.stringify cannot write as the replacer would. */
const NOT_PLAIN: unique symbol = Symbol('not plain');

/**
 * `value` with redaction applied the way the redacting replacer applies it (the redactor gets the
 * same field name), as plain data that JSON.stringify then writes on V8's fast path: the same
 * bytes as the replacer, about twice as fast for a typical LLM step, whose text often holds four
 * digits in a row and so might hold a card number (#17). Unchanged parts are shared, changed ones
 * copied; the caller's objects are never modified. A secret-looking key, and anything JSON cannot
 * carry as is (Maps, Errors, class instances, toJSON, BigInt, non-finite numbers, deeper than
 * MAX_DEPTH...), answers NOT_PLAIN and the value takes the replacer.
 */
function redactPlain(value: unknown, key: string, screen: RedactScreen, redact: StringRedactor | undefined, redactKeys: Set<string>, depth: number): unknown {
  switch (typeof value) {
    case 'string':
      return redact !== undefined && screen(value) ? redact(value, key) : value;
    case 'number':
      return Number.isFinite(value) ? value : NOT_PLAIN;
    case 'boolean':
    case 'undefined':
      return value;
    case 'object':
      break;
    default:
      return NOT_PLAIN;
  }
  if (value === null) return null;
  if (depth > MAX_DEPTH) return NOT_PLAIN;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = redactPlain(v, String(i), screen, redact, redactKeys, depth + 1);
      if (r === NOT_PLAIN) return NOT_PLAIN;
      if (r !== v) (copy ??= value.slice())[i] = r;
    }
    return copy ?? value;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if ((proto !== plainPrototype && proto !== null) || typeof (value as { toJSON?: unknown }).toJSON === 'function') return NOT_PLAIN;
  const keyed = redactKeys.size > 0;
  let copy: Record<string, unknown> | undefined;
  for (const k of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[k];
    // A secret-looking key sends its section through the replacer, as before (the offload worker's deferral relies on it).
    if (keyed && redactKeys.has(k.toLowerCase())) return NOT_PLAIN;
    const r = redactPlain(v, k, screen, redact, redactKeys, depth + 1);
    if (r === NOT_PLAIN) return NOT_PLAIN;
    if (r !== v) (copy ??= { ...(value as Record<string, unknown>) })[k] = r;
  }
  return copy ?? value;
}

/** Set by the deferring screen when it let a big string through unredacted (see deferredRedact). */
let bigSeen = false;
const deferringScreens = new WeakMap<EncodeOptions, RedactScreen>();

function deferringScreen(opts: EncodeOptions, base: RedactScreen): RedactScreen {
  let screen = deferringScreens.get(opts);
  if (!screen) {
    screen = (v) => {
      if (v.length < BIG_STRING_CHARS) return base(v);
      bigSeen = true;
      return false;
    };
    deferringScreens.set(opts, screen);
  }
  return screen;
}

/**
 * The envelope is the tracer's own typed fields, so only payload and context go through the
 * replacer, and only when they hold something it could change: a replacer function takes V8 off
 * its fast JSON path for every key it is called on (#2). Keys follow the contract's order.
 */
function stringifyWith(event: AgentEvent, opts: EncodeOptions, replacer: (this: unknown, key: string, value: unknown) => unknown, defer: boolean): string {
  const screen = defer && opts.mightRedact ? deferringScreen(opts, opts.mightRedact) : opts.mightRedact;
  const plainPayload = screen === undefined ? NOT_PLAIN : redactPlain(event.payload, '', screen, opts.redactString, opts.redactKeys, 0);
  const plainContext = screen === undefined ? NOT_PLAIN : redactPlain(event.context, '', screen, opts.redactString, opts.redactKeys, 0);
  // Plain data with redaction applied (the common step): one plain call writes the same bytes.
  if (plainPayload !== NOT_PLAIN && plainContext !== NOT_PLAIN) {
    return JSON.stringify(plainPayload === event.payload && plainContext === event.context ? event : { ...event, payload: plainPayload, context: plainContext });
  }
  const payload = (plainPayload !== NOT_PLAIN ? JSON.stringify(plainPayload) : JSON.stringify(event.payload, replacer)) as string | undefined;
  const context = (plainContext !== NOT_PLAIN ? JSON.stringify(plainContext) : JSON.stringify(event.context, replacer)) as string | undefined;
  if (payload === undefined || context === undefined || payload[0] !== '{' || context[0] !== '{') throw new TypeError('payload and context must be objects');
  return (
    `{"schema_version":${q(event.schema_version)},"event_id":${q(event.event_id)},"session_id":${q(event.session_id)},"agent_id":${q(event.agent_id)}` +
    `,"emitter_id":${q(event.emitter_id)},"seq":${q(event.seq)},"timestamp":${q(event.timestamp)},"event_type":${q(event.event_type)},"status":${q(event.status)}` +
    `,"payload":${payload},"context":${context}${event.offload === undefined ? '' : `,"offload":${q(event.offload)}`}}`
  );
}

function serialize(event: AgentEvent, opts: EncodeOptions, defer = false): { json: string; event: AgentEvent | undefined } {
  let replacer = replacers.get(opts);
  if (replacer === undefined && (opts.redactString || opts.redactKeys.size > 0)) {
    replacer = makeReplacer(opts.redactString, opts.redactKeys);
    replacers.set(opts, replacer);
  }
  try {
    // Without redaction, plain JSON.stringify is the fast path; BigInt and cycles throw and take
    // the careful path below (functions, Maps and Sets are then left to JSON's own rules).
    return { json: replacer ? stringifyWith(event, opts, replacer, defer) : JSON.stringify(event), event: undefined };
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
 * S3 when the event is over the size cap. Synchronous unless the event is oversized. Only the
 * serialization runs here; the rest of an oversized event's work (parsing, digests, uploads,
 * re-serializing) goes to `opts.shrink` when given: off the agent's thread.
 */
export function encodeEvent(event: AgentEvent, opts: EncodeOptions): Encoded | Promise<Encoded> {
  const defer = opts.deferredRedact !== undefined && opts.shrink !== undefined && opts.mightRedact !== undefined;
  bigSeen = false;
  let { json } = serialize(event, opts, defer);
  const redactLater = defer && bigSeen;
  // A big string let through unredacted in an event that may yet fit: redact here after all.
  if (redactLater && json.length <= opts.maxEventBytes) json = serialize(event, opts).json;
  else if (redactLater) return finish(opts.shrink!(json, { ...shrinkOptions(opts), redact: opts.deferredRedact! }));
  // Cheap upper bound first: UTF-8 is at most 3 bytes per UTF-16 unit, and at least 1.
  if (json.length * 3 <= opts.maxEventBytes) return { value: Buffer.from(json), offloaded: false };
  if (json.length <= opts.maxEventBytes && Buffer.byteLength(json) <= opts.maxEventBytes) return { value: Buffer.from(json), offloaded: false };
  const shrinkOpts = shrinkOptions(opts);
  return finish(opts.shrink ? opts.shrink(json, shrinkOpts) : shrinkJson(json, shrinkOpts, opts.s3Client));
}

function shrinkOptions(opts: EncodeOptions): ShrinkOptions {
  const out: ShrinkOptions = {
    maxEventBytes: opts.maxEventBytes,
    maxRecordBytes: opts.maxRecordBytes,
    s3: opts.s3,
    offloadTimeoutMs: opts.offloadTimeoutMs ?? DEFAULT_OFFLOAD_TIMEOUT_MS,
  };
  const skip = opts.skipS3?.();
  if (skip) out.skipS3 = skip;
  return out;
}

function finish(done: Promise<ShrinkResult>): Promise<Encoded> {
  return done.then((r) => {
    const out: Encoded = { value: Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength), offloaded: r.offloaded };
    if (r.problem !== undefined) out.problem = r.problem;
    if (r.problemCode !== undefined) out.problemCode = r.problemCode;
    return out;
  });
}

export const DEFAULT_OFFLOAD_TIMEOUT_MS = 10_000;
