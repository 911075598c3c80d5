/**
 * `GET /metrics`: the API's Prometheus metrics in the text exposition format. The API owns a
 * registry of its own (not prom-client's global one, so several apps in one process — tests —
 * never collide): default process metrics, HTTP requests by method, route and status, jobs
 * enqueued, the scene download queue's depth by state (read from Redis at scrape time) and the
 * CDSE account's rolling 30-day transfer window against its budget (read from Postgres at scrape
 * time), the global cache's registered bytes against `GLOBAL_CACHE_MAX_BYTES` (read from Postgres at
 * scrape time), and what the maintenance runs this process performed (`POST
 * /v1/admin/cache/maintenance`) removed — the same counters as the workers' scheduled runs
 * (`CACHE_MAINTENANCE_COUNTERS`). Names follow Prometheus conventions: `scenecache_` prefix, base
 * units, `_total` on counters.
 */
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { buildCacheMaintenanceCounters, queueDepthGauge, type CacheMaintenanceCounter, type Logger, type QueueCounts } from '@scenecache/core';
import type { RemovalReason } from '@scenecache/global-cache';

/** Where the upstream transfer budget gauges read from. */
export interface UpstreamBudgetSource {
  /**
   * Bytes of the upstream file downloads started in the last 30 days, fleet-wide (bytes). It must
   * settle within a deadline of its own (a hung Postgres would hang the scrape); a rejection is
   * logged and exported as NaN.
   */
  windowBytes(): Promise<number>;
  /** `UPSTREAM_MONTHLY_BYTES` (bytes), exported as `scenecache_upstream_budget_bytes`. */
  budgetBytes: number;
}

/** Where the global cache gauges read from. */
export interface GlobalCacheSizeSource {
  /**
   * Bytes the `global_scene_cache` rows register (valid and invalid; bytes), fleet-wide. It must
   * settle within a deadline of its own; a rejection is logged and exported as NaN.
   */
  registeredBytes(): Promise<number>;
  /**
   * `GLOBAL_CACHE_MAX_BYTES` (bytes), exported as `scenecache_global_cache_budget_bytes`;
   * `undefined` (no budget): that gauge is not exported at all (so an alert comparing with it never fires).
   */
  budgetBytes: number | undefined;
}

/** HTTP request duration buckets (seconds). */
const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The API's metrics: record through the methods, scrape through `registry`. */
export class ApiMetrics {
  /** The API's registry (default process metrics included). */
  readonly registry = new Registry();
  readonly #requests: Counter<'method' | 'route' | 'status_code'>;
  readonly #duration: Histogram<'method' | 'route' | 'status_code'>;
  readonly #enqueued: Counter;
  readonly #cacheRemovals: Record<CacheMaintenanceCounter, Counter>;

  /**
   * @param queue - the scene download queue, counted at scrape time. When Redis cannot answer,
   *   the scrape still succeeds, without `scenecache_queue_jobs` samples (and a warning is logged).
   * @param upstream - the transfer window, read at scrape time. When it cannot be read, the
   *   scrape still succeeds with `scenecache_upstream_window_bytes` NaN ("unknown", not "nothing
   *   downloaded") and a warning is logged.
   * @param cache - the global cache's registered bytes, read at scrape time (NaN and a warning
   *   when they cannot be read), and its budget.
   */
  constructor(queue: QueueCounts, logger: Logger, upstream: UpstreamBudgetSource, cache: GlobalCacheSizeSource) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const labelNames = ['method', 'route', 'status_code'] as const;
    this.#requests = new Counter({ name: 'scenecache_http_requests_total', help: 'HTTP requests answered by the API, by method, route (the route pattern; "unmatched" for 404s) and status code.', labelNames, registers });
    this.#duration = new Histogram({
      name: 'scenecache_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by method, route and status code.',
      labelNames,
      buckets: HTTP_DURATION_BUCKETS,
      registers,
    });
    this.#enqueued = new Counter({ name: 'scenecache_jobs_enqueued_total', help: 'Download jobs enqueued by the API (a batch counts each job; an idempotent repeat counts nothing).', registers });
    new Gauge({ ...queueDepthGauge(queue, logger), registers });
    new Gauge({
      name: 'scenecache_upstream_window_bytes',
      help: 'Bytes of the upstream (CDSE) file downloads started in the last 30 days, fleet-wide, read from Postgres (upstream_transfers) at scrape time.',
      registers,
      async collect() {
        try {
          this.set(await upstream.windowBytes());
        } catch (err) {
          logger.warn({ err }, 'metrics: could not read the upstream transfer window');
          this.set(Number.NaN);
        }
      },
    });
    new Gauge({
      name: 'scenecache_upstream_budget_bytes',
      help: 'Bytes the fleet may download from CDSE per rolling 30 days (UPSTREAM_MONTHLY_BYTES); past it, downloads wait.',
      registers,
    }).set(upstream.budgetBytes);
    new Gauge({
      name: 'scenecache_global_cache_bytes',
      help: 'Bytes the global cache registers (global_scene_cache rows, valid and invalid: what GLOBAL_CACHE_MAX_BYTES limits), fleet-wide, read from Postgres at scrape time.',
      registers,
      async collect() {
        try {
          this.set(await cache.registeredBytes());
        } catch (err) {
          logger.warn({ err }, 'metrics: could not read the global cache size');
          this.set(Number.NaN);
        }
      },
    });
    if (cache.budgetBytes !== undefined) {
      new Gauge({
        name: 'scenecache_global_cache_budget_bytes',
        help: "The global cache's budget (GLOBAL_CACHE_MAX_BYTES): above it, maintenance evicts down to 90 % of it. Not exported when no budget is set.",
        registers,
      }).set(cache.budgetBytes);
    }
    // Label-free counters: they exist from the start at 0.
    this.#cacheRemovals = buildCacheMaintenanceCounters((config) => new Counter({ ...config, registers }));
  }

  /**
   * Count products removed from the global cache by a maintenance run of this process (`reason`:
   * `evicted`, `expired` or `invalid`, each its counter of `CACHE_MAINTENANCE_COUNTERS`).
   * @param products - products (rows) removed.
   * @param bytes - bytes of the band objects deleted with them.
   */
  cacheProductsRemoved(reason: RemovalReason, products: number, bytes: number): void {
    this.#cacheRemovals[reason].inc(products);
    this.#cacheRemovals.removedBytes.inc(bytes);
  }

  /** Count orphan objects (no row described them) deleted from the global bucket by a maintenance run of this process. */
  cacheOrphansRemoved(objects: number): void {
    this.#cacheRemovals.orphans.inc(objects);
  }

  /** Count `jobs` newly enqueued jobs. */
  jobsEnqueued(jobs: number): void {
    this.#enqueued.inc(jobs);
  }

  /** Count one answered request that took `seconds`. */
  observeRequest(method: string, route: string, statusCode: number, seconds: number): void {
    const labels = { method, route, status_code: String(statusCode) };
    this.#requests.inc(labels);
    this.#duration.observe(labels, seconds);
  }
}

/**
 * Serve `GET /metrics` on `app` and time every request of `app` (an `onResponse` hook on the
 * instance itself, so it sees every route, whatever plugin scope registered it). Call it on the
 * root instance, before the other routes are registered.
 */
export function registerMetrics(app: FastifyInstance, metrics: ApiMetrics): void {
  app.addHook('onResponse', (request, reply, done) => {
    metrics.observeRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  // In a child scope (the root hook above still applies): the route is added when the plugin
  // loads, after plugins registered before this call (the OpenAPI collector) have loaded.
  void app.register((scope, _options, done) => {
    scope.get(
      '/metrics',
      { logLevel: 'warn', schema: { operationId: 'getMetrics', summary: 'Prometheus metrics (text exposition format)', tags: ['metrics'] } },
      async (_request, reply) => {
        const text = await metrics.registry.metrics();
        return reply.header('content-type', metrics.registry.contentType).send(text);
      },
    );
    done();
  });
}
