import { gzipSync } from 'node:zlib';
import { parquetWriteBuffer, type ColumnSource } from 'hyparquet-writer';
import type { AgentEvent } from '@agenttrace/contract';

/** Compression codec of the Parquet files. */
export type ParquetCompression = 'snappy' | 'gzip' | 'none';

/**
 * The archive's columns. Typed columns are what people filter and aggregate on; payload, context
 * and offload are kept whole as JSON text so nothing of the event is lost (offload references stay
 * references).
 */
export const ARCHIVE_COLUMNS = [
  'event_id',
  'session_id',
  'agent_id',
  'emitter_id',
  'seq',
  'timestamp',
  'event_type',
  'status',
  'tool',
  'model',
  'input_tokens',
  'output_tokens',
  'cost_usd',
  'latency_ms',
  'parent_event_id',
  'schema_version',
  'kafka_partition',
  'kafka_offset',
  'payload_json',
  'context_json',
  'offload_json',
] as const;

export type ArchiveColumn = (typeof ARCHIVE_COLUMNS)[number];

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const bigint = (v: unknown): bigint | null => (typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : null);

/**
 * Rows of one file, held column by column so encoding does not walk row objects again.
 * Growable arrays; a file is bounded by rollRows/rollBytes.
 */
export class ColumnBuffer {
  readonly #event_id: string[] = [];
  readonly #session_id: string[] = [];
  readonly #agent_id: string[] = [];
  readonly #emitter_id: string[] = [];
  readonly #seq: number[] = [];
  readonly #timestamp: number[] = [];
  readonly #event_type: string[] = [];
  readonly #status: string[] = [];
  readonly #tool: Array<string | null> = [];
  readonly #model: Array<string | null> = [];
  readonly #input_tokens: Array<bigint | null> = [];
  readonly #output_tokens: Array<bigint | null> = [];
  readonly #cost_usd: Array<number | null> = [];
  readonly #latency_ms: Array<number | null> = [];
  readonly #parent_event_id: Array<string | null> = [];
  readonly #kafka_offset: number[] = [];
  readonly #payload_json: string[] = [];
  readonly #context_json: string[] = [];
  readonly #offload_json: Array<string | null> = [];
  #minTs = Number.POSITIVE_INFINITY;
  #maxTs = Number.NEGATIVE_INFINITY;

  get rows(): number {
    return this.#event_id.length;
  }

  get minTimestamp(): number {
    return this.#minTs;
  }

  get maxTimestamp(): number {
    return this.#maxTs;
  }

  push(e: AgentEvent, timestampMs: number, offset: number): void {
    const p = e.payload;
    this.#event_id.push(e.event_id);
    this.#session_id.push(e.session_id);
    this.#agent_id.push(e.agent_id);
    this.#emitter_id.push(e.emitter_id);
    this.#seq.push(e.seq);
    this.#timestamp.push(timestampMs);
    this.#event_type.push(e.event_type);
    this.#status.push(e.status);
    this.#tool.push(str(p.tool));
    // llm_call carries the model in the payload; other steps may name it in the context.
    this.#model.push(str(p.model) ?? str(e.context.model));
    this.#input_tokens.push(bigint(p.input_tokens));
    this.#output_tokens.push(bigint(p.output_tokens));
    this.#cost_usd.push(num(p.cost_usd));
    this.#latency_ms.push(num(p.latency_ms));
    this.#parent_event_id.push(str(e.context.parent_event_id));
    this.#kafka_offset.push(offset);
    this.#payload_json.push(JSON.stringify(p));
    this.#context_json.push(JSON.stringify(e.context));
    this.#offload_json.push(e.offload === undefined ? null : JSON.stringify(e.offload));
    if (timestampMs < this.#minTs) this.#minTs = timestampMs;
    if (timestampMs > this.#maxTs) this.#maxTs = timestampMs;
  }

  /** Encodes the rows as one Parquet file. */
  encode(partition: number, opts: { rowGroupRows: number; compression: ParquetCompression; kvMetadata?: Record<string, string> }): Uint8Array {
    const n = this.rows;
    const seq = new BigInt64Array(n);
    const offsets = new BigInt64Array(n);
    for (let i = 0; i < n; i++) {
      seq[i] = BigInt(this.#seq[i]!);
      offsets[i] = BigInt(this.#kafka_offset[i]!);
    }
    const partitions = new Int32Array(n).fill(partition);
    const versions = new Int32Array(n).fill(1);
    // Statistics on the JSON text columns cost time and help no filter; event ids are unique, so a
    // dictionary never pays for them.
    const columns: ColumnSource[] = [
      { name: 'event_id', type: 'STRING', data: this.#event_id, nullable: false, encoding: 'PLAIN' },
      { name: 'session_id', type: 'STRING', data: this.#session_id, nullable: false },
      { name: 'agent_id', type: 'STRING', data: this.#agent_id, nullable: false },
      { name: 'emitter_id', type: 'STRING', data: this.#emitter_id, nullable: false },
      { name: 'seq', type: 'INT64', data: seq, nullable: false },
      { name: 'timestamp', type: 'TIMESTAMP', data: this.#timestamp, nullable: false },
      { name: 'event_type', type: 'STRING', data: this.#event_type, nullable: false },
      { name: 'status', type: 'STRING', data: this.#status, nullable: false },
      { name: 'tool', type: 'STRING', data: this.#tool },
      { name: 'model', type: 'STRING', data: this.#model },
      { name: 'input_tokens', type: 'INT64', data: this.#input_tokens },
      { name: 'output_tokens', type: 'INT64', data: this.#output_tokens },
      { name: 'cost_usd', type: 'DOUBLE', data: this.#cost_usd },
      { name: 'latency_ms', type: 'DOUBLE', data: this.#latency_ms },
      { name: 'parent_event_id', type: 'STRING', data: this.#parent_event_id },
      { name: 'schema_version', type: 'INT32', data: versions, nullable: false },
      { name: 'kafka_partition', type: 'INT32', data: partitions, nullable: false },
      { name: 'kafka_offset', type: 'INT64', data: offsets, nullable: false },
      { name: 'payload_json', type: 'STRING', data: this.#payload_json, nullable: false, statistics: false },
      { name: 'context_json', type: 'STRING', data: this.#context_json, nullable: false, statistics: false },
      { name: 'offload_json', type: 'STRING', data: this.#offload_json, statistics: false },
    ];
    const codec = opts.compression === 'gzip' ? 'GZIP' : opts.compression === 'none' ? 'UNCOMPRESSED' : 'SNAPPY';
    const buffer = parquetWriteBuffer({
      columnData: columns,
      codec,
      ...(codec === 'GZIP' ? { compressors: { GZIP: (input: Uint8Array) => new Uint8Array(gzipSync(input, { level: 6 })) } } : {}),
      rowGroupSize: opts.rowGroupRows,
      kvMetadata: Object.entries(opts.kvMetadata ?? {}).map(([key, value]) => ({ key, value })),
      createdBy: 'agenttrace-archiver',
    });
    return new Uint8Array(buffer);
  }
}

/** One archived row as hyparquet reads it back. */
export interface ArchiveRow {
  event_id: string;
  session_id: string;
  agent_id: string;
  emitter_id: string;
  seq: bigint | number;
  timestamp: Date | bigint | number;
  event_type: string;
  status: string;
  schema_version: number;
  kafka_partition: number;
  kafka_offset: bigint | number;
  payload_json: string;
  context_json: string;
  offload_json: string | null;
}

/** Rebuilds the contract event from a row: the typed columns plus the JSON columns, exactly. */
export function eventFromRow(row: ArchiveRow): AgentEvent {
  const ts = row.timestamp instanceof Date ? row.timestamp.getTime() : Number(row.timestamp);
  const event: AgentEvent = {
    schema_version: 1,
    event_id: row.event_id,
    session_id: row.session_id,
    agent_id: row.agent_id,
    emitter_id: row.emitter_id,
    seq: Number(row.seq),
    timestamp: new Date(ts).toISOString(),
    event_type: row.event_type as AgentEvent['event_type'],
    status: row.status as AgentEvent['status'],
    payload: JSON.parse(row.payload_json) as AgentEvent['payload'],
    context: JSON.parse(row.context_json) as AgentEvent['context'],
  };
  if (row.offload_json !== null && row.offload_json !== undefined) event.offload = JSON.parse(row.offload_json) as AgentEvent['offload'];
  return event;
}
