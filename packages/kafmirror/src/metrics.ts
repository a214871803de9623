import { MetricsHttpServer } from '@agenttrace/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** kafmirror's Prometheus metrics, in a registry of its own (tests run several replicators per process). */
export class MirrorMetrics {
  readonly registry = new Registry();
  readonly records = new Counter({ name: 'agenttrace_kafmirror_records_replicated_total', help: 'Records committed on the target', labelNames: ['topic'], registers: [this.registry] });
  readonly bytes = new Counter({ name: 'agenttrace_kafmirror_bytes_replicated_total', help: 'Key + value bytes committed on the target', labelNames: ['topic'], registers: [this.registry] });
  readonly skipped = new Counter({ name: 'agenttrace_kafmirror_records_skipped_total', help: 'Source records not mirrored', labelNames: ['topic', 'reason'], registers: [this.registry] });
  readonly transactions = new Counter({ name: 'agenttrace_kafmirror_transactions_total', help: 'Target transactions by outcome', labelNames: ['result'], registers: [this.registry] });
  readonly checkpoints = new Counter({ name: 'agenttrace_kafmirror_checkpoints_written_total', help: 'Translated consumer-group offsets written to the target', labelNames: ['group'], registers: [this.registry] });
  readonly lagRecords = new Gauge({ name: 'agenttrace_kafmirror_lag_records', help: 'Source records not yet committed on the target', labelNames: ['topic', 'partition'], registers: [this.registry] });
  readonly lagSeconds = new Gauge({ name: 'agenttrace_kafmirror_lag_seconds', help: 'Age of the oldest source record not yet committed on the target (0 when caught up)', labelNames: ['topic', 'partition'], registers: [this.registry] });
  readonly lagAlert = new Gauge({ name: 'agenttrace_kafmirror_lag_alert', help: '1 while the lag is above --lag-threshold', registers: [this.registry] });
  readonly latency = new Histogram({
    name: 'agenttrace_kafmirror_replication_latency_seconds',
    help: 'Time from a record\'s source timestamp to the commit of its copy on the target',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly #http = new MetricsHttpServer(this.registry);

  /** Serves /metrics and /healthz; resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return this.#http.listen(port, host);
  }

  close(): Promise<void> {
    return this.#http.close();
  }
}
