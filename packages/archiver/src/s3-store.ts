import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';

// Listing and fetching are the read side of the archive format; the writer uses the same code.
export { getObjectBytes, listKeys } from '@agenttrace/archive-format';

export interface PutOptions {
  multipartThresholdBytes: number;
  multipartPartBytes: number;
  contentType?: string;
  metadata?: Record<string, string>;
  /** Aborts the request(s) in flight (a revoked partition's upload, close() giving up). */
  signal?: AbortSignal;
}

/**
 * Writes one object; it is durable in S3 when this resolves. Large bodies go up in parts
 * (CreateMultipartUpload / UploadPart / CompleteMultipartUpload); a failed multipart upload is
 * aborted so no orphaned parts accumulate.
 */
export async function putObject(s3: S3Client, bucket: string, key: string, body: Uint8Array, opts: PutOptions): Promise<{ multipart: boolean }> {
  const contentType = opts.contentType ?? 'application/vnd.apache.parquet';
  if (body.byteLength <= opts.multipartThresholdBytes) {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: contentType,
        ContentMD5: createHash('md5').update(body).digest('base64'),
        Metadata: opts.metadata,
      }),
      { abortSignal: opts.signal },
    );
    return { multipart: false };
  }
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType, Metadata: opts.metadata }), { abortSignal: opts.signal });
  const uploadId = created.UploadId;
  if (!uploadId) throw new Error(`S3 returned no upload id for ${key}`);
  try {
    const parts: Array<{ ETag: string; PartNumber: number }> = [];
    for (let start = 0, n = 1; start < body.byteLength; start += opts.multipartPartBytes, n++) {
      const chunk = body.subarray(start, Math.min(start + opts.multipartPartBytes, body.byteLength));
      const res = await s3.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: n,
          Body: chunk,
          ContentMD5: createHash('md5').update(chunk).digest('base64'),
        }),
        { abortSignal: opts.signal },
      );
      if (!res.ETag) throw new Error(`S3 returned no ETag for part ${n} of ${key}`);
      parts.push({ ETag: res.ETag, PartNumber: n });
    }
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: opts.signal });
    return { multipart: true };
  } catch (err) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
    throw err;
  }
}

/** An object's user metadata (x-amz-meta-*, names lower-cased), or undefined when it does not exist. */
export async function objectMetadata(s3: S3Client, bucket: string, key: string, signal?: AbortSignal): Promise<Record<string, string> | undefined> {
  try {
    const res = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    return res.Metadata ?? {};
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404) return undefined;
    throw err;
  }
}

export async function deleteKey(s3: S3Client, bucket: string, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}
