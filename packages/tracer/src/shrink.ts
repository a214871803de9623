import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type { AgentEvent } from '@agenttrace/contract';
import { errorMessage, isS3Abort, uploadOffload, type S3Options } from '@agenttrace/common';
import { buildRedactor, type RedactOptions, type StringRedactor } from './redact.js';

/**
 * Making an oversized event fit: its biggest fields go to S3, or, when that is impossible, it is
 * sent inline and marked. Pure data in and out (the event's JSON text, plain options), so the same
 * code runs on the agent's thread or in the offload worker (offload-worker.ts).
 */
export interface ShrinkOptions {
  maxEventBytes: number;
  maxRecordBytes: number;
  s3: S3Options | undefined;
  /** Bound on the uploads of one event, ms (TracerOptions.offloadTimeoutMs). */
  offloadTimeoutMs: number;
  /** Set when S3 is not to be tried for this event, and why (the reason is reported as is). */
  skipS3?: { reason: string; code: OffloadProblemCode };
  /**
   * Set when strings of at least `bigStringChars` were left unredacted by the caller (the
   * built-in redaction only, which can be rebuilt here): they are redacted here, first.
   */
  redact?: { options: Pick<RedactOptions, 'email' | 'cardNumbers' | 'keys'>; bigStringChars: number };
}

export type OffloadProblemCode = 'OFFLOAD_FAILED' | 'OFFLOAD_TIMEOUT';

export interface ShrinkResult {
  value: Uint8Array;
  /** Fields went to S3. */
  offloaded: boolean;
  /** Set when an oversized event could not be offloaded (it was sent inline, marked). */
  problem?: string;
  problemCode?: OffloadProblemCode;
}

/** Fields that stay inline whatever their size: readers filter and aggregate on them. */
const KEEP_INLINE = new Set(['tool', 'model', 'latency_ms', 'input_tokens', 'output_tokens', 'cost_usd', 'action', 'subagent_id', 'name', 'parent_event_id', 'confidence']);
const PREVIEW_CHARS = 1024;

interface Field {
  path: string;
  holder: Record<string, unknown>;
  key: string;
  json: string;
  bytes: number;
}

function bigFields(event: AgentEvent): Field[] {
  const fields: Field[] = [];
  for (const [section, holder] of [['payload', event.payload], ['context', event.context]] as const) {
    for (const [key, value] of Object.entries(holder)) {
      if (KEEP_INLINE.has(key) || value === undefined) continue;
      const json = JSON.stringify(value);
      if (json.length > 256) fields.push({ path: `${section}.${key}`, holder: holder as Record<string, unknown>, key, json, bytes: Buffer.byteLength(json) });
    }
  }
  return fields.sort((a, b) => b.bytes - a.bytes);
}

const encoder = new TextEncoder();

/**
 * `json` is the serialized (redacted, JSON-safe) event. The size of the event is kept by
 * arithmetic as fields are replaced (JSON text is compositional: a value's text is the same
 * inside its parent), not by serializing the whole event again per field.
 */
export async function shrinkJson(json: string, opts: ShrinkOptions, s3Client: () => S3Client): Promise<ShrinkResult> {
  let event: AgentEvent | undefined;
  if (opts.redact) {
    event = JSON.parse(json) as AgentEvent;
    const { redactString } = redactorFor(opts.redact.options);
    if (redactString) {
      redactBig(event.payload, redactString, opts.redact.bigStringChars);
      redactBig(event.context, redactString, opts.redact.bigStringChars);
      json = JSON.stringify(event);
    }
  }
  let total = Buffer.byteLength(json);
  if (total <= opts.maxEventBytes) return { value: encoder.encode(json), offloaded: false };
  event ??= JSON.parse(json) as AgentEvent;
  const fields = bigFields(event);
  const moved: string[] = [];
  let problem: string | undefined;
  let problemCode: OffloadProblemCode = 'OFFLOAD_FAILED';
  if (opts.skipS3) {
    problem = opts.skipS3.reason;
    problemCode = opts.skipS3.code;
  } else if (opts.s3) {
    const s3 = s3Client();
    const bound = AbortSignal.timeout(opts.offloadTimeoutMs);
    for (const f of fields) {
      if (total <= opts.maxEventBytes) break;
      try {
        const ref = await uploadOffload(s3, opts.s3, f.json, bound);
        f.holder[f.key] = ref;
        total += Buffer.byteLength(JSON.stringify(ref)) - f.bytes;
        moved.push(f.path);
      } catch (err) {
        if (bound.aborted) {
          problemCode = 'OFFLOAD_TIMEOUT';
          problem = `upload to S3 bucket "${opts.s3.bucket}" did not finish within offloadTimeoutMs (${opts.offloadTimeoutMs} ms)`;
        } else if (isS3Abort(err)) {
          problemCode = 'OFFLOAD_TIMEOUT';
          problem = `upload to S3 bucket "${opts.s3.bucket}" timed out: ${errorMessage(err)}`;
        } else {
          problem = `upload to S3 bucket "${opts.s3.bucket}" failed: ${errorMessage(err)}`;
        }
        break;
      }
    }
  } else {
    problem = 'no S3 bucket is configured for oversized fields (options.s3 or AGENTTRACE_S3_BUCKET)';
  }
  if (!problem) {
    event.offload = { fields: moved };
    return { value: encoder.encode(JSON.stringify(event)), offloaded: moved.length > 0 };
  }
  // Offload impossible: send inline and marked; only over Kafka's record limit are fields cut,
  // to a placeholder that says the value was not stored anywhere.
  const kept = fields.filter((f) => !moved.includes(f.path)).map((f) => f.path);
  const truncated: string[] = [];
  for (const f of fields) {
    if (total <= opts.maxRecordBytes) break;
    if (moved.includes(f.path)) continue;
    const placeholder = {
      $truncated: { size: f.bytes, sha256: createHash('sha256').update(f.json).digest('hex'), preview: f.json.slice(0, PREVIEW_CHARS), stored: false, reason: `not stored: ${problem}` },
    };
    f.holder[f.key] = placeholder;
    total += Buffer.byteLength(JSON.stringify(placeholder)) - f.bytes;
    truncated.push(f.path);
  }
  const failed = truncated.length > 0 ? `${problem}; truncated to fit Kafka's record limit (not stored): ${truncated.join(', ')}` : problem;
  event.offload = { fields: [...moved, ...kept], failed };
  return {
    value: encoder.encode(JSON.stringify(event)),
    offloaded: moved.length > 0,
    problem: `event ${event.event_id} is over ${opts.maxEventBytes} bytes and ${failed}; it was sent inline, marked`,
    problemCode,
  };
}

const redactors = new Map<string, ReturnType<typeof buildRedactor>>();
function redactorFor(options: Pick<RedactOptions, 'email' | 'cardNumbers' | 'keys'>): ReturnType<typeof buildRedactor> {
  const key = JSON.stringify(options);
  let r = redactors.get(key);
  if (!r) redactors.set(key, (r = buildRedactor(options)));
  return r;
}

/**
 * Redacts, in place, the strings of at least `min` characters that the caller left as they were,
 * passing the field name (or array index) as the serializer's replacer does. Shorter strings were
 * redacted by the caller already (redaction is idempotent, so doing a big one twice is harmless).
 */
function redactBig(value: unknown, redact: StringRedactor, min: number): void {
  if (typeof value !== 'object' || value === null) return;
  const holder = value as Record<string, unknown>;
  for (const key of Object.keys(holder)) {
    const v = holder[key];
    if (typeof v === 'string') {
      if (v.length >= min) holder[key] = redact(v, key);
    } else redactBig(v, redact, min);
  }
}
