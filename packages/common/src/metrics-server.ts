import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a metrics endpoint renders: a prom-client Registry fits as it is. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** What `/healthz` reports: a bare verdict, or a verdict with details (served as JSON). */
export type HealthReport = boolean | { ok: boolean; [detail: string]: unknown };

/** Serves `/metrics` (Prometheus text) and `/healthz` for a service (503 when not ok). */
export class MetricsHttpServer {
  readonly #source: MetricsSource;
  readonly #healthy: () => HealthReport;
  #server: Server | undefined;

  constructor(source: MetricsSource, healthy: () => HealthReport = () => true) {
    this.#source = source;
    this.#healthy = healthy;
  }

  /** Listens on host:port (0 = any free port); resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.#source.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.#source.contentType }).end(text),
          (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
        );
      } else if (path === '/healthz') {
        const report = this.#healthy();
        if (typeof report === 'boolean') res.writeHead(report ? 200 : 503, { 'content-type': 'text/plain' }).end(report ? 'ok\n' : 'unhealthy\n');
        else res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(report)}\n`);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.#server = server;
    return (server.address() as AddressInfo).port;
  }

  /** Stops listening and drops open connections; idempotent. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
