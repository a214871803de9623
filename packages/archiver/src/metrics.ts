import { MetricsHttpServer } from '@agenttrace/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The archiver's Prometheus metrics, in a registry of its own (several archivers may share a process). */
export class ArchiverMetrics {
  readonly registry = new Registry();
  readonly filesWritten = new Counter({ name: 'agenttrace_archiver_files_written_total', help: 'Parquet objects uploaded', labelNames: ['reason'], registers: [this.registry] });
  readonly rowsWritten = new Counter({ name: 'agenttrace_archiver_rows_written_total', help: 'Events written to Parquet objects', registers: [this.registry] });
  readonly bytesWritten = new Counter({ name: 'agenttrace_archiver_bytes_written_total', help: 'Bytes of Parquet uploaded', registers: [this.registry] });
  readonly rawBytes = new Counter({ name: 'agenttrace_archiver_raw_bytes_total', help: 'Raw JSON bytes of the events written', registers: [this.registry] });
  readonly dlqRecords = new Counter({ name: 'agenttrace_archiver_dlq_records_total', help: 'Records sent to the dead-letter topic', labelNames: ['reason'], registers: [this.registry] });
  readonly dlqTruncated = new Counter({ name: 'agenttrace_archiver_dlq_truncated_total', help: 'Dead-letter records whose value was cut to fit the dead-letter topic (header agenttrace-dlq-truncated-from)', registers: [this.registry] });
  readonly dlqGivenUp = new Counter({ name: 'agenttrace_archiver_dlq_given_up_total', help: 'Bad records the dead-letter topic never accepted; skipped after dlqGiveUpMs (logged with source partition and offset)', labelNames: ['reason'], registers: [this.registry] });
  readonly startRetries = new Counter({ name: 'agenttrace_archiver_start_retries_total', help: 'Transient Kafka failures retried while starting', registers: [this.registry] });
  readonly uploadRetries = new Counter({ name: 'agenttrace_archiver_upload_retries_total', help: 'Failed S3 or DLQ attempts that were retried', labelNames: ['operation'], registers: [this.registry] });
  readonly commitFailures = new Counter({ name: 'agenttrace_archiver_commit_failures_total', help: 'Offset commits Kafka refused (the range is replayed)', registers: [this.registry] });
  readonly adopted = new Counter({ name: 'agenttrace_archiver_adopted_objects_total', help: 'Objects stored by an earlier run or owner that were adopted instead of archiving their range again', registers: [this.registry] });
  readonly conflicts = new Counter({ name: 'agenttrace_archiver_conflicts_total', help: 'Ranges overlapping an object of a concurrent writer (the archiver stops)', registers: [this.registry] });
  readonly lag = new Gauge({ name: 'agenttrace_archiver_consumer_lag', help: 'Records in the partition not yet durably archived (high watermark - committed offset)', labelNames: ['partition'], registers: [this.registry] });
  readonly pendingUploadBytes = new Gauge({ name: 'agenttrace_archiver_pending_upload_bytes', help: 'Encoded bytes waiting for upload', registers: [this.registry] });
  readonly paused = new Gauge({ name: 'agenttrace_archiver_consumption_paused', help: '1 while consumption is paused for back-pressure', registers: [this.registry] });
  readonly uploadSeconds = new Histogram({
    name: 'agenttrace_archiver_upload_seconds',
    help: 'Time to upload one object including retries',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  #http: MetricsHttpServer | undefined;

  /** Serves /metrics and /healthz (`health` says what the archiver waits for); resolves with the bound port. */
  listen(port: number, host: string, health?: () => { ok: boolean; [k: string]: unknown }): Promise<number> {
    this.#http ??= new MetricsHttpServer(this.registry, health);
    return this.#http.listen(port, host);
  }

  async close(): Promise<void> {
    await this.#http?.close();
  }
}
