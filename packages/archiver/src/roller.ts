import type { MessageHeader } from '@confluentinc/kafka-javascript';
import type { ParseResult } from '@agenttrace/contract';
import { ColumnBuffer, hourStartOf } from '@agenttrace/archive-format';

/**
 * Offsets of a partition did not strictly rise (code OFFSET_ORDER, an ArchiverError once it reaches
 * the archiver). A plain Error: encode workers must not load @agenttrace/common and its native Kafka client.
 */
export class OffsetOrderError extends Error {
  readonly code = 'OFFSET_ORDER';
}

/** A record that is not a valid event; it goes to the dead-letter topic before its range is committed. */
export interface BadRecord {
  offset: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: number | undefined;
  reason: string;
  detail: string;
  /** The record's own headers, copied to the dead-letter record ahead of the DLQ headers. */
  headers?: MessageHeader[];
  /**
   * Set once the dead-letter topic acknowledged this record (or the archiver gave up on it), so a
   * retry of the file's dead-lettering does not send it again.
   */
  dlqSettled?: boolean;
}

export type RollReason = 'rows' | 'bytes' | 'hour' | 'age' | 'memory' | 'close';

/** A closed file: the offset range it covers, its rows (if any) and the bad records of that range. */
export interface ClosedFile {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  /** Hour of the file's events; undefined when the range held only bad records (no object is written). */
  hourStart: number | undefined;
  columns: ColumnBuffer;
  bad: BadRecord[];
  rawBytes: number;
  reason: RollReason;
}

interface OpenFile {
  firstOffset: number;
  lastOffset: number;
  hourStart: number | undefined;
  columns: ColumnBuffer;
  bad: BadRecord[];
  rawBytes: number;
  openedAt: number;
}

/**
 * Cuts one partition's record stream into files. Boundaries depend only on the stream (row count,
 * raw bytes, the hour of each event's timestamp) except for age, memory-pressure and shutdown rolls;
 * see docs/archiver.md for why a replay after a crash still leaves each event in exactly one object.
 */
export class PartitionRoller {
  readonly partition: number;
  readonly #rollRows: number;
  readonly #rollBytes: number;
  #open: OpenFile | undefined;
  /** Last offset added since the roller was created or discarded, across file boundaries. */
  #last: number | undefined;

  constructor(partition: number, opts: { rollRows: number; rollBytes: number }) {
    this.partition = partition;
    this.#rollRows = opts.rollRows;
    this.#rollBytes = opts.rollBytes;
  }

  get bufferedBytes(): number {
    return this.#open?.rawBytes ?? 0;
  }

  get openedAt(): number | undefined {
    return this.#open?.openedAt;
  }

  /** Adds one record; returns the files it closed (an hour change closes the previous one first). */
  add(offset: number, value: Buffer | null, key: Buffer | null, timestamp: number | undefined, parsed: ParseResult, now: number, headers?: MessageHeader[]): ClosedFile[] {
    // A repeated or backward offset means records of two positions of the partition were mixed (a
    // batch from before a rebalance or seek): writing it would duplicate events and commit backwards.
    if (this.#last !== undefined && !(offset > this.#last)) {
      throw new OffsetOrderError(`partition ${this.partition}: offset ${offset} after ${this.#last}; offsets must strictly rise, nothing of this partition is written past ${this.#last}`);
    }
    this.#last = offset;
    const out: ClosedFile[] = [];
    const size = value?.byteLength ?? 0;
    let hour: number | undefined;
    if (parsed.ok) {
      hour = hourStartOf(Date.parse(parsed.event.timestamp));
      const open = this.#open;
      if (open && open.hourStart !== undefined && open.hourStart !== hour) out.push(this.#close('hour'));
    }
    const open = (this.#open ??= {
      firstOffset: offset,
      lastOffset: offset,
      hourStart: undefined,
      columns: new ColumnBuffer(),
      bad: [],
      rawBytes: 0,
      openedAt: now,
    });
    open.lastOffset = offset;
    open.rawBytes += size;
    if (parsed.ok) {
      open.hourStart ??= hour;
      open.columns.push(parsed.event, Date.parse(parsed.event.timestamp), offset);
    } else {
      open.bad.push({ offset, key, value, timestamp, reason: parsed.reason, detail: parsed.detail, ...(headers && headers.length > 0 ? { headers } : {}) });
    }
    // Bad records count towards the limits too, so a stream of garbage cannot grow a file without bound.
    if (open.columns.rows + open.bad.length >= this.#rollRows) out.push(this.#close('rows'));
    else if (open.rawBytes >= this.#rollBytes) out.push(this.#close('bytes'));
    return out;
  }

  /** Closes the open file when it is older than maxAgeMs (or unconditionally for close/memory). */
  roll(reason: RollReason, now: number, maxAgeMs = 0): ClosedFile | undefined {
    if (!this.#open) return undefined;
    if (reason === 'age' && now - this.#open.openedAt < maxAgeMs) return undefined;
    return this.#close(reason);
  }

  /** Forgets the open file (its records are replayed by whoever owns the partition next). */
  discard(): void {
    this.#open = undefined;
    this.#last = undefined;
  }

  #close(reason: RollReason): ClosedFile {
    const f = this.#open!;
    this.#open = undefined;
    return {
      partition: this.partition,
      firstOffset: f.firstOffset,
      lastOffset: f.lastOffset,
      hourStart: f.hourStart,
      columns: f.columns,
      bad: f.bad,
      rawBytes: f.rawBytes,
      reason,
    };
  }
}
