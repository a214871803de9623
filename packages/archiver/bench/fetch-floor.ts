/**
 * The floor for any Kafka client on this machine, for the archiver bench: Fetch v4 requests sent
 * straight to the broker, and each response's record batches walked in place. A record becomes its
 * offset and the position and length of its value in typed arrays, with no JavaScript object per
 * record.
 *
 * This is a measuring stick, not a client. It assumes:
 * - one broker that leads every partition (the bench's single-node stack);
 * - plaintext;
 * - uncompressed batches (the bench produces none);
 * - no transactions.
 *
 * It stops with an error on anything else.
 */
import { connect, type Socket } from 'node:net';

export interface FetchFloorResult {
  records: number;
  valueBytes: number;
  seconds: number;
  /** CPU time of the whole process while fetching, µs. */
  cpuMicros: number;
}

const FETCH = 1;
const FETCH_VERSION = 4; // the oldest Fetch that Kafka 4 still serves, and the first with isolation_level
const RECORDS_START = 61; // fixed part of a v2 record batch
const COMPRESSION_MASK = 0x07;
const CONTROL_BATCH = 0x20;

/** One response frame at a time (the floor sends one request and waits for its answer). */
class Framer {
  #chunks: Buffer[] = [];
  #have = 0;
  /** Size of the frame being received, size prefix included; -1 until its prefix has arrived. */
  #size = -1;
  #waiting: ((frame: Buffer) => void) | undefined;

  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.#chunks.push(d);
      this.#have += d.length;
      this.#emit();
    });
  }

  next(): Promise<Buffer> {
    return new Promise<Buffer>((resolve) => {
      this.#waiting = resolve;
      this.#emit();
    });
  }

  #emit(): void {
    if (this.#size < 0 && this.#have >= 4) {
      const head = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
      this.#chunks = [head];
      this.#size = head.readInt32BE(0) + 4;
    }
    // Joined once, when the whole frame is in: joining on every chunk would be quadratic.
    if (!this.#waiting || this.#size < 0 || this.#have < this.#size) return;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const rest = all.subarray(this.#size);
    const frame = all.subarray(4, this.#size);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#have = rest.length;
    this.#size = -1;
    const resolve = this.#waiting;
    this.#waiting = undefined;
    resolve(frame);
  }
}

function fetchRequest(correlationId: number, topic: string, offsets: number[]): Buffer {
  const t = Buffer.from(topic);
  const client = Buffer.from('fetch-floor');
  const b = Buffer.alloc(4 + 10 + client.length + 17 + 6 + t.length + 4 + offsets.length * 16);
  let o = b.writeInt32BE(b.length - 4, 0);
  o = b.writeInt16BE(FETCH, o);
  o = b.writeInt16BE(FETCH_VERSION, o);
  o = b.writeInt32BE(correlationId, o);
  o = b.writeInt16BE(client.length, o);
  o += client.copy(b, o);
  o = b.writeInt32BE(-1, o); // replica id: a consumer
  o = b.writeInt32BE(200, o); // max wait, ms
  o = b.writeInt32BE(1, o); // min bytes
  o = b.writeInt32BE(64 << 20, o); // max bytes
  o = b.writeInt8(1, o); // read_committed, like the archiver
  o = b.writeInt32BE(1, o);
  o = b.writeInt16BE(t.length, o);
  o += t.copy(b, o);
  o = b.writeInt32BE(offsets.length, o);
  offsets.forEach((offset, partition) => {
    o = b.writeInt32BE(partition, o);
    o = b.writeBigInt64BE(BigInt(offset), o);
    o = b.writeInt32BE(16 << 20, o); // per partition
  });
  return b;
}

/** Read position of varint(): a tuple per call would allocate six times per record. */
let cursor = 0;

/** A zigzag varint (Kafka's record fields) at `cursor`; moves `cursor` past it. */
function varint(b: Buffer): number {
  let raw = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = b[cursor++]!;
    raw += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
}

/** Reads `records` records of every partition of `topic` from offset 0, walking batches in place. */
export async function fetchFloor(broker: string, topic: string, partitions: number, records: number, timeoutMs = 120_000): Promise<FetchFloorResult> {
  const i = broker.lastIndexOf(':');
  const sock = connect({ host: broker.slice(0, i), port: Number(broker.slice(i + 1)) });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  const framer = new Framer(sock);
  const next = new Array<number>(partitions).fill(0);
  // Reused for every batch: what a worker would receive (offsets, value positions and lengths).
  const offsets = new Float64Array(1 << 20);
  const valueStart = new Int32Array(1 << 20);
  const valueLength = new Int32Array(1 << 20);
  let read = 0;
  let valueBytes = 0;
  let correlationId = 0;
  const deadline = Date.now() + timeoutMs;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    while (read < records) {
      if (Date.now() > deadline) throw new Error(`fetch floor read ${read} of ${records} records within ${timeoutMs} ms`);
      sock.write(fetchRequest(++correlationId, topic, next));
      const r = await framer.next();
      let o = 8; // correlation id, throttle time
      const topics = r.readInt32BE(o);
      o += 4;
      for (let ti = 0; ti < topics; ti++) {
        o += 2 + r.readInt16BE(o);
        const parts = r.readInt32BE(o);
        o += 4;
        for (let pi = 0; pi < parts; pi++) {
          const partition = r.readInt32BE(o);
          const error = r.readInt16BE(o + 4);
          if (error !== 0) throw new Error(`fetch floor: partition ${partition} answered error code ${error}`);
          o += 4 + 2 + 8 + 8; // partition, error, high watermark, last stable offset
          const aborted = r.readInt32BE(o);
          o += 4;
          if (aborted > 0) throw new Error('fetch floor: transactional records are not supported');
          const size = r.readInt32BE(o);
          o += 4;
          const end = o + Math.max(size, 0);
          let n = 0;
          // A response may end with a partial batch: it is skipped and fetched again next time.
          while (o + RECORDS_START <= end) {
            const base = Number(r.readBigInt64BE(o));
            const batchEnd = o + 12 + r.readInt32BE(o + 8);
            if (batchEnd > end) break;
            const attributes = r.readInt16BE(o + 21);
            if (attributes & COMPRESSION_MASK) throw new Error('fetch floor: compressed batches are not supported');
            const last = base + r.readInt32BE(o + 23);
            if (!(attributes & CONTROL_BATCH)) {
              const count = r.readInt32BE(o + 57);
              cursor = o + RECORDS_START;
              for (let k = 0; k < count; k++) {
                const length = varint(r);
                const recordEnd = cursor + length;
                cursor += 1; // attributes
                varint(r); // timestamp delta
                const offsetDelta = varint(r);
                const keyLength = varint(r);
                if (keyLength > 0) cursor += keyLength;
                const vLength = varint(r);
                const offset = base + offsetDelta;
                if (offset >= next[partition]!) {
                  offsets[n] = offset;
                  valueStart[n] = cursor;
                  valueLength[n] = vLength;
                  valueBytes += Math.max(vLength, 0);
                  n++;
                }
                cursor = recordEnd;
              }
            }
            next[partition] = Math.max(next[partition]!, last + 1);
            o = batchEnd;
          }
          read += n;
          o = end;
        }
      }
    }
  } finally {
    sock.destroy();
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { records: read, valueBytes, seconds, cpuMicros: cpu.user + cpu.system };
}
