import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { isOffloadRef, type AgentEvent, type OffloadInfo, type OffloadRef } from '@agenttrace/contract';
import { AgentTraceError, OptionsError, errorMessage } from './errors.js';

/** Where the S3 (or S3-compatible: MinIO, s3rver) object store is and which bucket to use. */
export interface S3Options {
  bucket: string;
  /** Key prefix for everything agenttrace writes (no leading or trailing slash). */
  prefix?: string;
  /** Custom endpoint, e.g. http://127.0.0.1:4568; omit for AWS. Path-style addressing is used when set. */
  endpoint?: string;
  region?: string;
  /** Credentials; when omitted the AWS SDK's default chain (AWS_ACCESS_KEY_ID, profiles, roles) is used. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /**
   * Bound on each S3 call, retries included, ms (default 30000, or AGENTTRACE_S3_TIMEOUT_MS). A
   * hung server (stopped process, black-holed network) then fails the call instead of holding it
   * for ever. Callers that need a tighter bound pass their own abort signal as well.
   */
  timeoutMs?: number;
}

/** Default bound on one S3 call (retries included): see S3Options.timeoutMs. */
export const S3_DEFAULT_TIMEOUT_MS = 30_000;
/** Opening a TCP connection to S3 takes milliseconds; a server that does not answer within this is not there. */
const S3_CONNECT_TIMEOUT_MS = 5_000;

export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<S3Options> {
  const out: Partial<S3Options> = {};
  if (env.AGENTTRACE_S3_BUCKET) out.bucket = env.AGENTTRACE_S3_BUCKET;
  if (env.AGENTTRACE_S3_PREFIX !== undefined) out.prefix = env.AGENTTRACE_S3_PREFIX;
  if (env.AGENTTRACE_S3_ENDPOINT) out.endpoint = env.AGENTTRACE_S3_ENDPOINT;
  if (env.AGENTTRACE_S3_REGION ?? env.AWS_REGION) out.region = env.AGENTTRACE_S3_REGION ?? env.AWS_REGION;
  if (env.AGENTTRACE_S3_TIMEOUT_MS) {
    const t = Number(env.AGENTTRACE_S3_TIMEOUT_MS);
    if (!Number.isInteger(t) || t < 1) throw new OptionsError('AGENTTRACE_S3_TIMEOUT_MS', `must be a positive integer (ms), got ${JSON.stringify(env.AGENTTRACE_S3_TIMEOUT_MS)}`);
    out.timeoutMs = t;
  }
  return out;
}

const requireCjs = createRequire(import.meta.url);
let sdk: typeof S3Sdk | undefined;

/**
 * The AWS S3 SDK, loaded on first use: it takes about 0.2 s to load, which every command-line
 * start would otherwise pay even when no S3 call is made. (In Node the SDK's import and require
 * resolve to the same CommonJS build, so classes from either are the same.)
 */
export function s3Sdk(): typeof S3Sdk {
  sdk ??= requireCjs('@aws-sdk/client-s3') as typeof S3Sdk;
  return sdk;
}

/** The bound createS3Client applies to every call of a client (see S3Options.timeoutMs). */
export function s3TimeoutMs(opts: Pick<S3Options, 'timeoutMs'>): number {
  const t = opts.timeoutMs ?? S3_DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(t) || t <= 0) throw new OptionsError('s3.timeoutMs', `must be a positive number of ms, got ${JSON.stringify(opts.timeoutMs)}`);
  return t;
}

type Send = S3Client['send'];
const clientTimeouts = new WeakMap<S3Client, number>();

/**
 * An S3 client whose every call is bounded: connection and socket-inactivity timeouts on each
 * attempt, and an abort signal on each send() (retries included) that fires after
 * S3Options.timeoutMs. The caller's own abort signal, when given, still applies.
 */
export function createS3Client(opts: Pick<S3Options, 'endpoint' | 'region' | 'credentials' | 'timeoutMs'>): S3Client {
  const timeoutMs = s3TimeoutMs(opts);
  const cfg: S3ClientConfig = {
    region: opts.region ?? 'us-east-1',
    maxAttempts: 3,
    // Per attempt: a server that accepts no connection, or stops sending or reading mid-request
    // (a stopped process still completes TCP handshakes from its listen backlog), fails the attempt.
    requestHandler: { connectionTimeout: Math.min(S3_CONNECT_TIMEOUT_MS, timeoutMs), requestTimeout: timeoutMs },
    // S3-compatible servers do not all understand the SDK's default flexible checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (opts.endpoint) {
    cfg.endpoint = opts.endpoint;
    cfg.forcePathStyle = true;
  }
  // Without explicit credentials the SDK's default chain decides (environment, profiles, roles),
  // for a local S3-compatible server too: `scripts/stack env` exports the local server's pair.
  if (opts.credentials) cfg.credentials = opts.credentials;
  const client = new (s3Sdk().S3Client)(cfg);
  clientTimeouts.set(client, timeoutMs);
  const send = client.send.bind(client) as (command: unknown, options?: unknown, cb?: unknown) => unknown;
  // Every call, whoever makes it (tracer, archiver, readers), gets the overall bound.
  client.send = ((command: unknown, options?: unknown, cb?: unknown) => {
    if (typeof options === 'function' || cb !== undefined) return send(command, options, cb);
    const given = (options as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
    const bound = AbortSignal.timeout(timeoutMs);
    return send(command, { ...(options as object | undefined), abortSignal: given ? AbortSignal.any([given, bound]) : bound });
  }) as Send;
  return client;
}

/** True when an S3 call failed because its abort signal fired (our bound, or the caller's). */
export function isS3Abort(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'AbortError' || name === 'TimeoutError';
}

export function describeS3(opts: Pick<S3Options, 'endpoint' | 'bucket'>): string {
  return `S3 bucket "${opts.bucket}" at ${opts.endpoint ?? 'AWS'}`;
}

export class S3Error extends AgentTraceError {}

/** Content-addressed key of an offloaded value. */
export function offloadKey(prefix: string | undefined, sha256: string): string {
  const p = prefix ? `${prefix.replace(/\/+$/, '')}/` : '';
  return `${p}payloads/sha256/${sha256.slice(0, 2)}/${sha256}.json`;
}

/**
 * Uploads a value's JSON text and returns the reference that replaces it in the event. `signal`
 * bounds it further than the client's own timeout (the tracer's offloadTimeoutMs).
 */
export async function uploadOffload(s3: S3Client, opts: Pick<S3Options, 'bucket' | 'prefix'>, json: string, signal?: AbortSignal): Promise<OffloadRef> {
  const body = Buffer.from(json, 'utf8');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const key = offloadKey(opts.prefix, sha256);
  await s3.send(new (s3Sdk().PutObjectCommand)({ Bucket: opts.bucket, Key: key, Body: body, ContentType: 'application/json' }), signal ? { abortSignal: signal } : undefined);
  return { $offload: { bucket: opts.bucket, key, size: body.length, sha256, content_type: 'application/json' } };
}

/** Downloads an offloaded value and checks its size and digest. */
export async function fetchOffload(s3: S3Client, ref: OffloadRef): Promise<unknown> {
  const { bucket, key, sha256, size } = ref.$offload;
  let bytes: Uint8Array;
  try {
    // The client bounds the request; reading the body is bounded here too (a server can stop
    // mid-body), by aborting the request, which ends the body stream with an error.
    const timeoutMs = clientTimeouts.get(s3) ?? S3_DEFAULT_TIMEOUT_MS;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error(`S3 did not answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      const res = await s3.send(new (s3Sdk().GetObjectCommand)({ Bucket: bucket, Key: key }), { abortSignal: ctl.signal });
      bytes = await res.Body!.transformToByteArray();
    } finally {
      clearTimeout(timer);
    }
  } catch (err) {
    throw new S3Error('OFFLOAD_FETCH_FAILED', `could not fetch offloaded payload s3://${bucket}/${key}: ${errorMessage(err)}`, { cause: err, retryable: true });
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== sha256 || bytes.length !== size) {
    throw new S3Error('OFFLOAD_CORRUPT', `offloaded payload s3://${bucket}/${key} does not match its reference (sha256 or size differs)`);
  }
  return JSON.parse(Buffer.from(bytes).toString('utf8'));
}

function getPath(obj: Record<string, unknown>, path: string): { parent: Record<string, unknown>; key: string } | undefined {
  const parts = path.split('.');
  let cur: unknown = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  if (typeof cur !== 'object' || cur === null) return undefined;
  return { parent: cur as Record<string, unknown>, key: parts[parts.length - 1]! };
}

/**
 * Returns a copy of the event with every offloaded field fetched back inline. The `offload`
 * marker is kept, and `offload.restored` lists the fields fetched back, so readers can tell a
 * restored field from one that never reached S3 (kept inline or truncated when the upload failed)
 * or one whose fetch failed (it keeps its reference). Fields that cannot be fetched are listed in
 * `failures`. An event whose upload failed part way still has its uploaded fields restored.
 */
export async function restoreOffloads(s3: S3Client, event: AgentEvent): Promise<{ event: AgentEvent; failures: string[] }> {
  if (!event.offload || event.offload.fields.length === 0) return { event, failures: [] };
  const refs = event.offload.fields.filter((path) => {
    const at = getPath(event as unknown as Record<string, unknown>, path);
    return at !== undefined && isOffloadRef(at.parent[at.key]);
  });
  if (refs.length === 0) return { event, failures: [] };
  const copy = structuredClone(event) as unknown as Record<string, unknown> & { offload: OffloadInfo };
  const failures: string[] = [];
  const restored: string[] = [];
  await Promise.all(
    refs.map(async (path) => {
      const at = getPath(copy, path)!;
      try {
        at.parent[at.key] = await fetchOffload(s3, at.parent[at.key] as OffloadRef);
        restored.push(path);
      } catch (err) {
        failures.push(`${path}: ${errorMessage(err)}`);
      }
    }),
  );
  copy.offload.restored = event.offload.fields.filter((f) => restored.includes(f));
  return { event: copy as unknown as AgentEvent, failures };
}

/** How each field an event lists in `offload.fields` stands, as a reader sees it. */
export interface OffloadStatus {
  /** Uploaded to S3 and fetched back by the reader. */
  restored: string[];
  /** Still a reference to S3: not fetched (restore off) or the fetch failed. */
  notRestored: string[];
  /** Never stored in S3: the upload failed and the field was kept inline, whole. */
  keptInline: string[];
  /** Never stored in S3: the upload failed and the field was cut to a preview to fit Kafka. */
  truncated: string[];
}

/** Reads the status of each offloaded field from the event itself (see restoreOffloads). */
export function offloadStatus(event: AgentEvent): OffloadStatus {
  const out: OffloadStatus = { restored: [], notRestored: [], keptInline: [], truncated: [] };
  const info = event.offload;
  if (!info) return out;
  const restored = new Set(info.restored ?? []);
  for (const path of info.fields) {
    const at = getPath(event as unknown as Record<string, unknown>, path);
    const value = at?.parent[at.key];
    if (restored.has(path)) out.restored.push(path);
    else if (isOffloadRef(value)) out.notRestored.push(path);
    else if (typeof value === 'object' && value !== null && '$truncated' in value) out.truncated.push(path);
    else if (info.failed !== undefined) out.keptInline.push(path);
    // Inline without a failure and not marked restored: a reader from before `restored` existed.
    else out.restored.push(path);
  }
  return out;
}
