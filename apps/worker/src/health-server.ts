/**
 * The worker's small HTTP server: `GET /healthz` (liveness: 200 while the worker runs, 503 once
 * it is shutting down or its Redis connection is gone) on WORKER_METRICS_PORT.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Health as the server reports it. */
export interface WorkerHealth {
  /** `true` while the worker accepts jobs. */
  healthy(): boolean;
}

/** Listen on `port` (0 = any free port); resolves with the server and the bound port. */
export async function startHealthServer(port: number, health: WorkerHealth, host = '0.0.0.0'): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
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
