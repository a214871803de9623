import type { MessageHeader } from '@confluentinc/kafka-javascript';
import { parseEvent } from '@agenttrace/contract';
import type { ParquetCompression } from './options.js';
import { PartitionRoller, type BadRecord, type ClosedFile, type RollReason } from './roller.js';

/** What a closed file becomes once encoded: ready to dead-letter, upload and commit. */
export interface EncodedFile {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  /** Hour of the file's events; undefined when the range held only bad records (no object is written). */
  hourStart: number | undefined;
  rows: number;
  rawBytes: number;
  reason: RollReason;
  bad: BadRecord[];
  /** The Parquet object; undefined when the range held no valid event. */
  body: Uint8Array | undefined;
  /** Ownership epoch of the partition when its records were added (see EncodePipeline). */
  epoch: number;
  /** Set when encoding failed (the archiver stops: nothing past the range is committed). */
  error?: string;
}

export interface EncodeSettings {
  topic: string;
  rollRows: number;
  rollBytes: number;
  rowGroupRows: number;
  compression: ParquetCompression;
}

/** One record as the partition work needs it (a Kafka message, or its copy inside a worker). */
export interface RawRecord {
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number | undefined;
  headers?: MessageHeader[];
}

/**
 * Validates, rolls and encodes the records of some partitions: the CPU-heavy part of archiving.
 * The same code runs on the main thread or inside an encode worker; file boundaries depend only on
 * the record stream and on the roll requests, in the order they are given.
 */
export class PartitionWork {
  readonly #s: EncodeSettings;
  readonly #rollers = new Map<number, PartitionRoller>();
  readonly #epochs = new Map<number, number>();

  constructor(settings: EncodeSettings) {
    this.#s = settings;
  }

  /** Adds one partition's records (offset order); returns the files they closed, encoded. */
  add(partition: number, records: Iterable<RawRecord>, now: number, epoch: number): EncodedFile[] {
    // discard() precedes records of a new epoch, so a file never mixes two epochs.
    this.#epochs.set(partition, epoch);
    let roller = this.#rollers.get(partition);
    if (!roller) {
      roller = new PartitionRoller(partition, this.#s);
      this.#rollers.set(partition, roller);
    }
    const out: EncodedFile[] = [];
    for (const r of records) {
      const parsed = parseEvent(r.value, { key: r.key });
      for (const file of roller.add(r.offset, r.value, r.key, r.timestamp, parsed, now, r.headers)) out.push(this.#encode(file));
    }
    return out;
  }

  /** Closes the partition's open file (all partitions when undefined); age rolls only old enough files. */
  roll(partition: number | undefined, reason: RollReason, now: number, maxAgeMs = 0): EncodedFile[] {
    const out: EncodedFile[] = [];
    for (const [p, roller] of this.#rollers) {
      if (partition !== undefined && p !== partition) continue;
      const file = roller.roll(reason, now, maxAgeMs);
      if (file) out.push(this.#encode(file));
    }
    return out;
  }

  discard(partition: number): void {
    this.#rollers.get(partition)?.discard();
    this.#rollers.delete(partition);
    this.#epochs.delete(partition);
  }

  bufferedBytes(partition: number): number {
    return this.#rollers.get(partition)?.bufferedBytes ?? 0;
  }

  partitions(): number[] {
    return [...this.#rollers.keys()];
  }

  #encode(file: ClosedFile): EncodedFile {
    const s = this.#s;
    const out: EncodedFile = {
      partition: file.partition,
      firstOffset: file.firstOffset,
      lastOffset: file.lastOffset,
      hourStart: file.hourStart,
      rows: file.columns.rows,
      rawBytes: file.rawBytes,
      reason: file.reason,
      bad: file.bad,
      body: undefined,
      epoch: this.#epochs.get(file.partition) ?? 0,
    };
    if (file.columns.rows > 0) {
      try {
        out.body = file.columns.encode(file.partition, {
          rowGroupRows: s.rowGroupRows,
          compression: s.compression,
          kvMetadata: { 'agenttrace.topic': s.topic, 'agenttrace.partition': String(file.partition), 'agenttrace.offsets': `${file.firstOffset}-${file.lastOffset}` },
        });
      } catch (err) {
        out.error = err instanceof Error ? err.message : String(err);
      }
    }
    return out;
  }
}
