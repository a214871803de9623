import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { S3Client } from '@aws-sdk/client-s3';
import { errorMessage } from '@agenttrace/common';
import type { ShrinkRequest } from './offload-worker.js';
import { shrinkJson, type ShrinkOptions, type ShrinkResult } from './shrink.js';

/**
 * Runs the work of oversized events (parse, digests, uploads, re-serialize) in one worker thread
 * shared by the process's tracers, so a 50 MB tool output costs the agent's thread its
 * serialization and a copy, not seconds (#14). The worker never keeps the process alive.
 */
const WORKER_URL = new URL('./offload-worker.js', import.meta.url);
/** Beyond its own upload bound, how long the worker may take before the event is sent without it. */
const WORKER_GRACE_MS = 5_000;
const YIELD_ABOVE_CHARS = 1 << 20;

interface Waiting {
  resolve: (r: ShrinkResult) => void;
  reject: (err: Error) => void;
}

let worker: Worker | undefined;
let nextId = 0;
const waiting = new Map<number, Waiting>();

/** False when the compiled worker is not beside this module (running from sources): work stays on this thread. */
export const offloadWorkerAvailable = existsSync(fileURLToPath(WORKER_URL));

function start(): Worker {
  const w = new Worker(WORKER_URL);
  w.on('message', (m: { id: number; result?: ShrinkResult; error?: string }) => {
    const wait = waiting.get(m.id);
    if (!wait) return;
    waiting.delete(m.id);
    if (m.result) wait.resolve(m.result);
    else wait.reject(new Error(m.error ?? 'offload worker failed'));
  });
  const fail = (err: Error) => {
    if (worker === w) worker = undefined;
    for (const wait of waiting.values()) wait.reject(err);
    waiting.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`offload worker exited (code ${code})`)));
  // After the listeners: adding a 'message' listener refs the worker's port again.
  w.unref();
  return w;
}

/**
 * Shrinks in the worker. If the worker fails or does not answer within its bound, the event is
 * sent without S3, marked, with that as the reason: it is never held for longer.
 */
export function shrinkInWorker(json: string, opts: ShrinkOptions, s3Client: () => S3Client): Promise<ShrinkResult> {
  const w = (worker ??= start());
  const id = nextId++;
  let timer: NodeJS.Timeout | undefined;
  const answer = new Promise<ShrinkResult>((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`the offload worker did not answer within ${opts.offloadTimeoutMs + WORKER_GRACE_MS} ms`));
    }, opts.offloadTimeoutMs + WORKER_GRACE_MS);
    const req: ShrinkRequest = { id, json, opts };
    // Copying a big text to the worker is a second block of the agent's thread: let the agent's
    // own callbacks run between it and the serialization.
    if (json.length > YIELD_ABOVE_CHARS) setImmediate(() => w.postMessage(req));
    else w.postMessage(req);
  });
  return answer.then(
    (r) => {
      clearTimeout(timer);
      return r;
    },
    (err: unknown) => {
      clearTimeout(timer);
      return shrinkJson(json, { ...opts, skipS3: { reason: `the payload was not stored: ${errorMessage(err)}`, code: 'OFFLOAD_FAILED' } }, s3Client);
    },
  );
}
