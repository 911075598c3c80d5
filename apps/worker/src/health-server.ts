/**
 * The worker's small HTTP server on WORKER_METRICS_PORT, for Kubernetes probes and Prometheus:
 *
 * - `GET /healthz` — liveness: "restarting this process would help". 200 while the process runs
 *   its job loop, and all through a graceful shutdown's drain (failing it then could get the pod
 *   killed before its jobs finish or are handed back). 503 when the BullMQ job loop has stopped
 *   although no shutdown was asked for (the process would sit idle for ever), or when Redis or
 *   Postgres has been unreachable for longer than `DEPENDENCY_LIVENESS_TIMEOUT_MS` (see
 *   dependency-watch.ts: a shorter outage never fails it — restarting every worker does not bring
 *   Redis back). An event loop wedged for good fails it by not answering within the probe's timeout.
 * - `GET /readyz` — readiness: "this worker is taking jobs". 503 once shutting down, while the
 *   Redis connection is not ready, while Redis or Postgres does not answer the background probes,
 *   or when the job loop has stopped. Kubernetes counts only ready pods for PodDisruptionBudgets
 *   and rollouts.
 * - `GET /metrics` — Prometheus text format (when a metrics source is given).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The paths this server answers (what the k8s probes and Prometheus scrape point at). */
export const WORKER_HTTP_PATHS = Object.freeze({ liveness: '/healthz', readiness: '/readyz', metrics: '/metrics' } as const);

/** The state of a check, as reported in the `/readyz` body. */
export type CheckState = 'ok' | 'fail';

/** Reply body of `/healthz` and `/readyz`. */
export interface ProbeReply {
  /** `ok` (HTTP 200); `failing` or `shutting_down` (HTTP 503). */
  status: 'ok' | 'failing' | 'shutting_down';
  /** One entry per check, e.g. `{redis: 'ok', job_loop: 'ok'}`. */
  checks: Record<string, CheckState>;
}

/** What the probes read; evaluated on every request, so it must be cheap and never block. */
export interface WorkerProbes {
  /** Liveness (`/healthz`): `ok` means keep the process; `failing` means restart it. */
  liveness(): ProbeReply;
  /** Readiness (`/readyz`): `ok` means the worker takes jobs. */
  readiness(): ProbeReply;
}

/** What {@link workerProbes} looks at: the live objects of a worker process. */
export interface WorkerProbeSources {
  /** `true` once a graceful shutdown has begun (set before the drain starts). */
  shuttingDown(): boolean;
  /** The BullMQ worker: `isRunning()` is `false` once its job loop has ended. */
  worker: { isRunning(): boolean };
  /** The worker's Redis connection (ioredis): ready = connected and usable. */
  redis: { readonly status: string };
  /** The background dependency probes (dependency-watch.ts); absent: not checked. */
  dependencies?: { down(): readonly string[]; overLimit(): readonly string[] };
}

/**
 * The probes of a worker process (see the module comment for what each one means).
 * Liveness: `failing` when the job loop is not running while no shutdown is under way, or when a
 * dependency has been unreachable past its bound. Readiness: `shutting_down` once the shutdown
 * began; else `failing` unless Redis is ready, every dependency answers its probes and the job
 * loop runs. Both only read state: a probe never waits on a dependency.
 */
export function workerProbes(sources: WorkerProbeSources): WorkerProbes {
  const jobLoop = (): CheckState => (sources.worker.isRunning() ? 'ok' : 'fail');
  const dependencyChecks = (failing: readonly string[]): Record<string, CheckState> =>
    sources.dependencies ? Object.fromEntries(['redis', 'postgres'].map((d) => [d, failing.includes(d) ? 'fail' : 'ok'])) : {};
  return {
    liveness() {
      if (sources.shuttingDown()) return { status: 'ok', checks: { job_loop: 'ok' } };
      const checks: Record<string, CheckState> = { job_loop: jobLoop(), ...dependencyChecks(sources.dependencies?.overLimit() ?? []) };
      return { status: Object.values(checks).every((c) => c === 'ok') ? 'ok' : 'failing', checks };
    },
    readiness() {
      const down = sources.dependencies?.down() ?? [];
      const checks: Record<string, CheckState> = {
        ...dependencyChecks(down),
        redis: sources.redis.status === 'ready' && !down.includes('redis') ? 'ok' : 'fail',
        job_loop: jobLoop(),
      };
      if (sources.shuttingDown()) return { status: 'shutting_down', checks };
      return { status: Object.values(checks).every((c) => c === 'ok') ? 'ok' : 'failing', checks };
    },
  };
}

/** What `GET /metrics` serves, e.g. the runtime's `WorkerMetrics`. */
export interface MetricsSource {
  /** The exposition text. */
  scrape(): Promise<string>;
  /** Its `Content-Type`. */
  readonly contentType: string;
}

/** How many ports after the default {@link startHealthServer} tries when it may move on. */
export const HEALTH_PORT_FALLBACKS = 32;

/**
 * Listen on `port` (0 = any free port); resolves with the server and the bound port.
 * `/healthz` and `/readyz` answer 200 with the probe's reply when its status is `ok`, else 503.
 * @param metrics - served at `GET /metrics`; without it `/metrics` is 404.
 * @param nextFree - when the port is taken (EADDRINUSE), try the next ones, up to
 *   {@link HEALTH_PORT_FALLBACKS} of them: for the default port, so several local workers start
 *   side by side (`npm run worker` twice). Off for a port set on purpose (Kubernetes probes and
 *   Prometheus expect exactly that port).
 * @throws when the port (or, with `nextFree`, every port tried) cannot be bound (EADDRINUSE, EACCES).
 */
export async function startHealthServer(
  port: number,
  probes: WorkerProbes,
  host = '0.0.0.0',
  metrics?: MetricsSource,
  nextFree = false,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === WORKER_HTTP_PATHS.metrics && metrics) {
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
    const probe = path === WORKER_HTTP_PATHS.liveness ? 'liveness' : path === WORKER_HTTP_PATHS.readiness ? 'readiness' : undefined;
    if (req.method === 'GET' && probe !== undefined) {
      const reply = probe === 'liveness' ? probes.liveness() : probes.readiness();
      res.writeHead(reply.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(reply));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'not_found', message: `${req.method} ${req.url} not found` } }));
  });
  const last = nextFree && port !== 0 ? Math.min(65535, port + HEALTH_PORT_FALLBACKS) : port;
  for (let candidate = port; ; candidate++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(candidate, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return { server, port: (server.address() as AddressInfo).port };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || candidate >= last) throw err;
    }
  }
}
