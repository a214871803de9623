import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DashboardError } from './errors.js';

/** Per-partition position and high watermark, for the lag gauge. */
export type LagSource = () => Promise<Array<{ topic: string; partition: number; lag: number }>>;

/** The consumer's Prometheus metrics, on a registry of its own (several instances may share a process). */
export class DashboardMetrics {
  readonly registry = new Registry();
  readonly events: Counter<'result'>;
  readonly dlq: Counter<'reason'>;
  readonly batches: Counter;
  readonly redisWrite: Histogram;
  readonly eventToRedis: Histogram;
  readonly recordToRedis: Histogram;
  readonly alertsFired: Counter<'rule'>;
  readonly alertsDelivered: Counter<'sink' | 'result'>;
  readonly redisUp: Gauge;
  readonly paused: Gauge;
  readonly redisRetries: Counter;
  readonly rebalances: Counter<'kind'>;
  readonly lag: Gauge<'topic' | 'partition'>;

  constructor(lagSource: LagSource, defaultLabels: Record<string, string> = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels(defaultLabels);
    this.events = new Counter({
      name: 'agenttrace_dashboard_events_total',
      help: 'Records handled; rate() of it is events/s. result: applied (written to Redis), duplicate (already in Redis, skipped), dlq.',
      labelNames: ['result'],
      registers,
    });
    this.dlq = new Counter({ name: 'agenttrace_dashboard_dlq_total', help: 'Records sent to the dead-letter topic, by reason.', labelNames: ['reason'], registers });
    this.batches = new Counter({ name: 'agenttrace_dashboard_batches_total', help: 'Atomic batch writes to Redis.', registers });
    this.redisWrite = new Histogram({
      name: 'agenttrace_dashboard_redis_write_seconds',
      help: 'Time of one atomic batch write to Redis.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.eventToRedis = new Histogram({
      name: 'agenttrace_dashboard_event_to_redis_seconds',
      help: 'From the event timestamp (when the step started) to the event being readable in Redis.',
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.recordToRedis = new Histogram({
      name: 'agenttrace_dashboard_record_to_redis_seconds',
      help: 'From the Kafka record timestamp (when it was produced) to the event being readable in Redis.',
      buckets: [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60],
      registers,
    });
    this.alertsFired = new Counter({ name: 'agenttrace_dashboard_alerts_fired_total', help: 'Alerts fired (once per session and rule).', labelNames: ['rule'], registers });
    this.alertsDelivered = new Counter({
      name: 'agenttrace_dashboard_alerts_delivered_total',
      help: 'Alert deliveries by sink (kafka, webhook) and result (ok, failed).',
      labelNames: ['sink', 'result'],
      registers,
    });
    this.redisUp = new Gauge({ name: 'agenttrace_dashboard_redis_up', help: '1 when the last Redis write succeeded.', registers });
    this.paused = new Gauge({ name: 'agenttrace_dashboard_paused', help: '1 while consumption is paused because Redis is unavailable.', registers });
    this.redisRetries = new Counter({ name: 'agenttrace_dashboard_redis_retries_total', help: 'Failed Redis writes that were retried.', registers });
    this.rebalances = new Counter({ name: 'agenttrace_dashboard_rebalances_total', help: 'Partition assignments and revocations.', labelNames: ['kind'], registers });
    const lag = new Gauge({
      name: 'agenttrace_dashboard_consumer_lag',
      help: 'Records in Kafka not yet in Redis, per assigned partition (high watermark minus the next offset Redis holds).',
      labelNames: ['topic', 'partition'],
      registers,
      async collect() {
        lag.reset();
        for (const l of await lagSource()) lag.set({ topic: l.topic, partition: String(l.partition) }, l.lag);
      },
    });
    this.lag = lag;
  }
}

/** Serves /metrics (Prometheus text) and /healthz. */
export class MetricsServer {
  readonly #server: Server;
  #address: AddressInfo | undefined;

  constructor(registry: Registry, health: () => { ok: boolean; [k: string]: unknown }) {
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET' }).end();
        return;
      }
      if (path === '/metrics') {
        registry
          .metrics()
          .then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
          .catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`));
        return;
      }
      if (path === '/healthz') {
        const h = health();
        res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(h)}\n`);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    });
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new DashboardError('METRICS_PORT_IN_USE', `cannot serve metrics on ${host}:${port}: ${err.code ?? err.message}. Pick another --metrics-port (0 = any free port).`, {
            cause: err,
          }),
        );
      };
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    this.#address = this.#server.address() as AddressInfo;
    return this.#address;
  }

  async close(): Promise<void> {
    if (!this.#address) return;
    this.#address = undefined;
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
