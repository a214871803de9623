import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from './errors.js';
import { S3Error, describeS3, s3Sdk, type S3Options } from './s3.js';

/**
 * Checks at start-up that the bucket exists and the credentials may use it (HeadBucket), so a
 * service with a wrong endpoint, bucket or credentials says so at once instead of at its first
 * upload minutes later. The error names the endpoint and bucket, never the credentials;
 * `retryable` is true only when the server could not be reached (it may still be starting).
 */
export async function checkBucket(s3: S3Client, opts: Pick<S3Options, 'endpoint' | 'bucket'>, timeoutMs: number): Promise<void> {
  const where = describeS3(opts);
  try {
    await s3.send(new (s3Sdk().HeadBucketCommand)({ Bucket: opts.bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) throw new S3Error('S3_NO_BUCKET', `${where} does not exist: create it, or set --s3-bucket / AGENTTRACE_S3_BUCKET`, { cause: err });
    if (status === 403 || status === 400 || status === 401) {
      throw new S3Error('S3_AUTH_FAILED', `${where} refused access (HTTP ${status}): check the credentials (AWS_ACCESS_KEY_ID and the AWS SDK chain) and the bucket's policy`, { cause: err });
    }
    if (status !== undefined) throw new S3Error('S3_FAILED', `${where} answered HTTP ${status} to a bucket check: ${errorMessage(err)}`, { cause: err, retryable: status >= 500 });
    const why = (err as { name?: string }).name === 'AbortError' || (err as { name?: string }).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : errorMessage(err);
    throw new S3Error('S3_UNAVAILABLE', `${where} is unreachable: ${why}; check --s3-endpoint / AGENTTRACE_S3_ENDPOINT`, { cause: err, retryable: true });
  }
}
