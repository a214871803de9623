/**
 * The offload worker: parses an oversized event's JSON text, uploads its biggest fields to S3 and
 * writes the record value, off the agent's thread (#14). Started by offloader.ts.
 */
import { parentPort } from 'node:worker_threads';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client, errorMessage } from '@agenttrace/common';
import { shrinkJson, type ShrinkOptions } from './shrink.js';

export interface ShrinkRequest {
  id: number;
  json: string;
  opts: ShrinkOptions;
}

const clients = new Map<string, S3Client>();

function clientFor(opts: ShrinkOptions): S3Client {
  const s3 = opts.s3!;
  const key = JSON.stringify([s3.endpoint, s3.region, s3.credentials, s3.timeoutMs]);
  let client = clients.get(key);
  if (!client) clients.set(key, (client = createS3Client(s3)));
  return client;
}

const port = parentPort;
if (port) {
  port.on('message', (req: ShrinkRequest) => {
    shrinkJson(req.json, req.opts, () => clientFor(req.opts)).then(
      // The record value's memory is handed over, not copied.
      (result) => port.postMessage({ id: req.id, result }, [result.value.buffer as ArrayBuffer]),
      (err: unknown) => port.postMessage({ id: req.id, error: errorMessage(err) }),
    );
  });
}
