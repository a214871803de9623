import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { isOffloadRef, type AgentEvent, type OffloadRef } from '@agenttrace/contract';
import { AgentTraceError, errorMessage } from './errors.js';

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
}

export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<S3Options> {
  const out: Partial<S3Options> = {};
  if (env.AGENTTRACE_S3_BUCKET) out.bucket = env.AGENTTRACE_S3_BUCKET;
  if (env.AGENTTRACE_S3_PREFIX !== undefined) out.prefix = env.AGENTTRACE_S3_PREFIX;
  if (env.AGENTTRACE_S3_ENDPOINT) out.endpoint = env.AGENTTRACE_S3_ENDPOINT;
  if (env.AGENTTRACE_S3_REGION ?? env.AWS_REGION) out.region = env.AGENTTRACE_S3_REGION ?? env.AWS_REGION;
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

export function createS3Client(opts: Pick<S3Options, 'endpoint' | 'region' | 'credentials'>): S3Client {
  const cfg: S3ClientConfig = {
    region: opts.region ?? 'us-east-1',
    maxAttempts: 3,
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
  return new (s3Sdk().S3Client)(cfg);
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

/** Uploads a value's JSON text and returns the reference that replaces it in the event. */
export async function uploadOffload(s3: S3Client, opts: Pick<S3Options, 'bucket' | 'prefix'>, json: string): Promise<OffloadRef> {
  const body = Buffer.from(json, 'utf8');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const key = offloadKey(opts.prefix, sha256);
  await s3.send(new (s3Sdk().PutObjectCommand)({ Bucket: opts.bucket, Key: key, Body: body, ContentType: 'application/json' }));
  return { $offload: { bucket: opts.bucket, key, size: body.length, sha256, content_type: 'application/json' } };
}

/** Downloads an offloaded value and checks its size and digest. */
export async function fetchOffload(s3: S3Client, ref: OffloadRef): Promise<unknown> {
  const { bucket, key, sha256, size } = ref.$offload;
  let bytes: Uint8Array;
  try {
    const res = await s3.send(new (s3Sdk().GetObjectCommand)({ Bucket: bucket, Key: key }));
    bytes = await res.Body!.transformToByteArray();
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
 * Returns a copy of the event with every offloaded field fetched back inline (the `offload`
 * marker is kept so readers can tell). Fields that cannot be fetched keep their reference and
 * are listed in `failures`.
 */
export async function restoreOffloads(s3: S3Client, event: AgentEvent): Promise<{ event: AgentEvent; failures: string[] }> {
  if (!event.offload || event.offload.failed || event.offload.fields.length === 0) return { event, failures: [] };
  const copy = structuredClone(event) as unknown as Record<string, unknown>;
  const failures: string[] = [];
  await Promise.all(
    event.offload.fields.map(async (path) => {
      const at = getPath(copy, path);
      const ref = at?.parent[at.key];
      if (!at || !isOffloadRef(ref)) return;
      try {
        at.parent[at.key] = await fetchOffload(s3, ref);
      } catch (err) {
        failures.push(`${path}: ${errorMessage(err)}`);
      }
    }),
  );
  return { event: copy as unknown as AgentEvent, failures };
}
