/**
 * The worker's small HTTP server on WORKER_METRICS_PORT: `GET /healthz` (liveness: 200 while the
 * worker runs, 503 once it is shutting down or its Redis connection is gone) and `GET /metrics`
 * (Prometheus text format, when a metrics source is given).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Health as the server reports it. */
export interface WorkerHealth {
  /** `true` while the worker accepts jobs. */
  healthy(): boolean;
}

/** What `GET /metrics` serves, e.g. the runtime's `WorkerMetrics`. */
export interface MetricsSource {
  /** The exposition text. */
  scrape(): Promise<string>;
  /** Its `Content-Type`. */
  readonly contentType: string;
}

/**
 * Listen on `port` (0 = any free port); resolves with the server and the bound port.
 * @param metrics - served at `GET /metrics`; without it `/metrics` is 404.
 * @throws when the port cannot be bound (e.g. EADDRINUSE).
 */
export async function startHealthServer(port: number, health: WorkerHealth, host = '0.0.0.0', metrics?: MetricsSource): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics' && metrics) {
      metrics.scrape().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.contentType });
          res.end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}`);
        },
      );
      return;
    }
    if (req.method === 'GET' && req.url === '/healthz') {
      const ok = health.healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable' }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'not_found', message: `${req.method} ${req.url} not found` } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
