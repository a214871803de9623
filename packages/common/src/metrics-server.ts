import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a metrics endpoint renders: a prom-client Registry fits as it is. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** Serves `/metrics` (Prometheus text) and `/healthz` for a service. */
export class MetricsHttpServer {
  readonly #source: MetricsSource;
  readonly #healthy: () => boolean;
  #server: Server | undefined;

  constructor(source: MetricsSource, healthy: () => boolean = () => true) {
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
        const ok = this.#healthy();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
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
