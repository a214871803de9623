import { Worker } from 'node:worker_threads';
import type { Message, MessageHeader } from '@confluentinc/kafka-javascript';
import { ArchiverError } from './errors.js';
import { PartitionWork, type EncodeSettings, type EncodedFile } from './partition-work.js';
import type { RollReason } from './roller.js';

/** Messages to an encode worker. Every message has an id; the worker answers each, in order. */
export type ToWorker =
  | { t: 'init'; id: number; settings: EncodeSettings }
  | {
      t: 'add';
      id: number;
      partition: number;
      epoch: number;
      now: number;
      n: number;
      offsets: Float64Array;
      /** NaN when the record has no timestamp. */
      ts: Float64Array;
      kStart: Int32Array;
      /** -1 for a null key. */
      kLen: Int32Array;
      vStart: Int32Array;
      /** -1 for a null value. */
      vLen: Int32Array;
      /** Keys and values of the batch, back to back. */
      data: ArrayBuffer;
      /** Headers of the records that have any, by index in the batch. */
      headers: Array<[number, MessageHeader[]]>;
    }
  | { t: 'roll'; id: number; partition: number | undefined; reason: RollReason; now: number; maxAgeMs: number }
  | { t: 'discard'; id: number; partition: number };

export interface FromWorker {
  id: number;
  files: EncodedFile[];
  /** Raw bytes held in each partition's open file after this message. */
  buffered: Array<[number, number]>;
  error?: string;
  /** Stable code of the error when it had one (e.g. OFFSET_ORDER). */
  errorCode?: string;
}

export interface PipelineHooks {
  /**
   * A closed, encoded file, in offset order per partition. Not called for files closed under an
   * earlier epoch of their partition (it was lost since; the next owner reads the range again).
   */
  onFile(file: EncodedFile): void;
  onError(err: Error): void;
  /** Current ownership epoch of a partition, bumped (with discard()) when the partition is lost. */
  epochOf(partition: number): number;
}

interface Pending {
  bytes: number;
}

interface Lane {
  worker: Worker;
  pending: Map<number, Pending>;
}

/** Where the encode work of a partition runs: fixed per partition, so its files stay in order. */
const laneOf = (partition: number, lanes: number) => partition % lanes;

/**
 * Runs validation + rolling + Parquet encoding either inline (workers = 0) or in a pool of worker
 * threads, one lane per worker; a partition always goes to the same lane, so its records and roll
 * requests are handled in the order they were given and its files come back in offset order.
 */
export class EncodePipeline {
  readonly #settings: EncodeSettings;
  readonly #hooks: PipelineHooks;
  readonly #workers: number;
  readonly #lanes: Lane[] = [];
  #inline: PartitionWork | undefined;
  #nextId = 0;
  #inflightBytes = 0;
  readonly #buffered = new Map<number, number>();
  #waiters: Array<() => boolean> = [];
  #closed = false;
  #failed = false;

  constructor(settings: EncodeSettings, workers: number, hooks: PipelineHooks) {
    this.#settings = settings;
    this.#workers = workers;
    this.#hooks = hooks;
  }

  async start(): Promise<void> {
    if (this.#workers === 0) {
      this.#inline = new PartitionWork(this.#settings);
      return;
    }
    // Tests and benchmarks run the TypeScript sources; the worker then comes from the built package.
    const here = import.meta.url;
    const url = here.endsWith('.ts') ? new URL('../dist/encode-worker.js', here) : new URL('./encode-worker.js', here);
    for (let i = 0; i < this.#workers; i++) {
      const worker = new Worker(url, { execArgv: [] });
      const lane: Lane = { worker, pending: new Map() };
      worker.on('message', (reply: FromWorker) => this.#onReply(lane, reply));
      worker.on('error', (err) => this.#fail(new Error(`encode worker failed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (!this.#closed) this.#fail(new Error(`encode worker exited with code ${code}`));
      });
      this.#lanes.push(lane);
    }
    for (const lane of this.#lanes) this.#send(lane, { t: 'init', id: 0, settings: this.#settings }, 0, []);
    await this.drain();
  }

  /** Raw bytes posted to workers and not answered yet. */
  get inflightBytes(): number {
    return this.#inflightBytes;
  }

  /** Raw bytes in the open file of each partition (as of the last answer). */
  bufferedBytes(): ReadonlyMap<number, number> {
    if (this.#inline) {
      const m = new Map<number, number>();
      for (const p of this.#inline.partitions()) m.set(p, this.#inline.bufferedBytes(p));
      return m;
    }
    return this.#buffered;
  }

  /** Adds one partition's messages (offset order). */
  add(partition: number, msgs: Message[], now: number): void {
    if (this.#inline) {
      const records = msgs.map((m) => ({
        offset: m.offset,
        key: m.key === undefined || m.key === null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key),
        value: m.value ?? null,
        timestamp: m.timestamp,
        ...(m.headers && m.headers.length > 0 ? { headers: m.headers } : {}),
      }));
      let files: EncodedFile[];
      try {
        files = this.#inline.add(partition, records, now, this.#hooks.epochOf(partition));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.#fail((err as { code?: unknown }).code === 'OFFSET_ORDER' ? new ArchiverError('OFFSET_ORDER', message) : new Error(message));
        return;
      }
      this.#deliver(files);
      return;
    }
    const n = msgs.length;
    let size = 0;
    const keys: Array<Buffer | null> = new Array<Buffer | null>(n);
    for (let i = 0; i < n; i++) {
      const m = msgs[i]!;
      const k = m.key === undefined || m.key === null ? null : Buffer.isBuffer(m.key) ? m.key : Buffer.from(m.key);
      keys[i] = k;
      size += (k?.byteLength ?? 0) + (m.value?.byteLength ?? 0);
    }
    const data = Buffer.allocUnsafeSlow(size);
    const offsets = new Float64Array(n);
    const ts = new Float64Array(n);
    const kStart = new Int32Array(n);
    const kLen = new Int32Array(n);
    const vStart = new Int32Array(n);
    const vLen = new Int32Array(n);
    const headers: Array<[number, MessageHeader[]]> = [];
    let at = 0;
    for (let i = 0; i < n; i++) {
      const m = msgs[i]!;
      offsets[i] = m.offset;
      ts[i] = m.timestamp ?? Number.NaN;
      const k = keys[i]!;
      kStart[i] = at;
      kLen[i] = k === null ? -1 : k.byteLength;
      if (k) at += k.copy(data, at);
      const v = m.value ?? null;
      vStart[i] = at;
      vLen[i] = v === null ? -1 : v.byteLength;
      if (v) at += v.copy(data, at);
      if (m.headers && m.headers.length > 0) headers.push([i, m.headers]);
    }
    const msg: ToWorker = { t: 'add', id: 0, partition, epoch: this.#hooks.epochOf(partition), now, n, offsets, ts, kStart, kLen, vStart, vLen, data: data.buffer as ArrayBuffer, headers };
    const lane = this.#lanes[laneOf(partition, this.#lanes.length)]!;
    this.#send(lane, msg, size, [
      data.buffer as ArrayBuffer,
      offsets.buffer as ArrayBuffer,
      ts.buffer as ArrayBuffer,
      kStart.buffer as ArrayBuffer,
      kLen.buffer as ArrayBuffer,
      vStart.buffer as ArrayBuffer,
      vLen.buffer as ArrayBuffer,
    ]);
  }

  /** Closes open files: one partition's, or every partition's when `partition` is undefined. */
  roll(partition: number | undefined, reason: RollReason, now: number, maxAgeMs = 0): void {
    if (partition !== undefined) this.#buffered.set(partition, 0);
    if (this.#inline) {
      this.#deliver(this.#inline.roll(partition, reason, now, maxAgeMs));
      return;
    }
    const lanes = partition === undefined ? this.#lanes : [this.#lanes[laneOf(partition, this.#lanes.length)]!];
    for (const lane of lanes) this.#send(lane, { t: 'roll', id: 0, partition, reason, now, maxAgeMs }, 0, []);
  }

  /** Forgets a partition's open file (its records are read again by the next owner). */
  discard(partition: number): void {
    this.#buffered.delete(partition);
    if (this.#inline) {
      this.#inline.discard(partition);
      return;
    }
    const lane = this.#lanes[laneOf(partition, this.#lanes.length)]!;
    this.#send(lane, { t: 'discard', id: 0, partition }, 0, []);
  }

  /** Resolves once every message sent so far was answered (its files handed to onFile). */
  async drain(): Promise<void> {
    await this.#until(() => this.#lanes.every((l) => l.pending.size === 0));
  }

  /** Resolves once the bytes in flight to the workers are at or below `maxBytes`. */
  async waitForCapacity(maxBytes: number): Promise<void> {
    await this.#until(() => this.#inflightBytes <= maxBytes);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wake();
    await Promise.all(this.#lanes.map((l) => l.worker.terminate()));
    this.#lanes.length = 0;
  }

  #until(cond: () => boolean): Promise<void> {
    const done = () => cond() || this.#closed || this.#failed;
    if (done()) return Promise.resolve();
    return new Promise<void>((resolve) =>
      this.#waiters.push(() => {
        if (!done()) return false;
        resolve();
        return true;
      }),
    );
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((check) => !check());
  }

  #send(lane: Lane | undefined, msg: ToWorker, bytes: number, transfer: ArrayBuffer[]): void {
    // After close() (e.g. the revocation that disconnecting triggers) there is nothing left to do.
    if (!lane || this.#closed) return;
    const id = ++this.#nextId;
    msg.id = id;
    lane.pending.set(id, { bytes });
    this.#inflightBytes += bytes;
    lane.worker.postMessage(msg, transfer);
  }

  #onReply(lane: Lane, reply: FromWorker): void {
    const pending = lane.pending.get(reply.id);
    lane.pending.delete(reply.id);
    if (pending) this.#inflightBytes -= pending.bytes;
    for (const [p, b] of reply.buffered) this.#buffered.set(p, b);
    if (reply.error !== undefined) {
      this.#fail(reply.errorCode === 'OFFSET_ORDER' ? new ArchiverError('OFFSET_ORDER', reply.error) : new Error(reply.error));
    } else {
      for (const f of reply.files) {
        // Structured clone turns Buffers into plain Uint8Arrays; the DLQ producer wants Buffers.
        for (const b of f.bad) {
          if (b.value) b.value = Buffer.from(b.value.buffer, b.value.byteOffset, b.value.byteLength);
          if (b.key) b.key = Buffer.from(b.key.buffer, b.key.byteOffset, b.key.byteLength);
        }
      }
      this.#deliver(reply.files);
    }
    this.#wake();
  }

  #deliver(files: EncodedFile[]): void {
    for (const f of files) {
      if (f.error !== undefined) {
        this.#fail(new Error(`could not encode partition ${f.partition} offsets ${f.firstOffset}-${f.lastOffset}: ${f.error}`));
        return;
      }
      // Closed under an earlier ownership of the partition: not ours to commit any more.
      if (f.epoch !== this.#hooks.epochOf(f.partition)) continue;
      this.#hooks.onFile(f);
    }
  }

  #fail(err: Error): void {
    if (this.#failed || this.#closed) return;
    this.#failed = true;
    this.#wake();
    this.#hooks.onError(err);
  }
}
