/**
 * Encode worker: runs PartitionWork (validation, rolling, Parquet encoding) for the partitions the
 * main thread sends it, so several partitions are encoded in parallel. Messages are handled strictly
 * in arrival order and answered in that order (see pipeline.ts for the protocol).
 */
import { parentPort } from 'node:worker_threads';
import { PartitionWork, type EncodedFile, type RawRecord } from './partition-work.js';
import type { ToWorker, FromWorker } from './pipeline.js';

const port = parentPort;
if (!port) throw new Error('encode-worker.js must run as a worker thread');

let work: PartitionWork | undefined;

/** Bad records point into the batch's shared buffer: give each its own small copy before posting. */
function detach(files: EncodedFile[]): ArrayBuffer[] {
  const transfer: ArrayBuffer[] = [];
  for (const f of files) {
    if (f.body) transfer.push(f.body.buffer as ArrayBuffer);
    for (const b of f.bad) {
      if (b.value) b.value = Buffer.from(new Uint8Array(b.value));
      if (b.key) b.key = Buffer.from(new Uint8Array(b.key));
    }
  }
  return transfer;
}

port.on('message', (msg: ToWorker) => {
  let files: EncodedFile[] = [];
  let error: string | undefined;
  let errorCode: string | undefined;
  try {
    if (msg.t === 'init') {
      work = new PartitionWork(msg.settings);
    } else if (!work) {
      throw new Error('encode worker used before init');
    } else if (msg.t === 'add') {
      const data = Buffer.from(msg.data);
      const records: RawRecord[] = new Array<RawRecord>(msg.n);
      const headers = new Map(msg.headers);
      for (let i = 0; i < msg.n; i++) {
        const kl = msg.kLen[i]!;
        const vl = msg.vLen[i]!;
        const ts = msg.ts[i]!;
        const h = headers.get(i);
        records[i] = {
          offset: msg.offsets[i]!,
          key: kl < 0 ? null : data.subarray(msg.kStart[i]!, msg.kStart[i]! + kl),
          value: vl < 0 ? null : data.subarray(msg.vStart[i]!, msg.vStart[i]! + vl),
          timestamp: Number.isNaN(ts) ? undefined : ts,
          ...(h ? { headers: h } : {}),
        };
      }
      files = work.add(msg.partition, records, msg.now, msg.epoch);
    } else if (msg.t === 'roll') {
      files = work.roll(msg.partition, msg.reason, msg.now, msg.maxAgeMs);
    } else if (msg.t === 'discard') {
      work.discard(msg.partition);
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') errorCode = code;
  }
  const buffered: Array<[number, number]> = work ? work.partitions().map((p) => [p, work!.bufferedBytes(p)]) : [];
  // A body shared by two files cannot happen (one buffer per encode), so transferring each is safe.
  const transfer = detach(files);
  const reply: FromWorker = { id: msg.id, files, buffered, ...(error !== undefined ? { error } : {}), ...(errorCode !== undefined ? { errorCode } : {}) };
  port.postMessage(reply, transfer);
});
