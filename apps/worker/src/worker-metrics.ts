/**
 * The worker's Prometheus metrics (served at `GET /metrics` by health-server.ts). Each worker
 * runtime owns a {@link WorkerMetrics} with a registry of its own — not prom-client's global one —
 * so several runtimes in one process (tests) never collide. Names follow Prometheus conventions:
 * `scenecache_` prefix, base units (seconds, bytes), `_total` on counters.
 *
 * Gauges that describe shared state (queue depth, upstream slots in use) are read when scraped,
 * from Redis and Postgres; counters and histograms count what this process did.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { buildCacheMaintenanceCounters, queueDepthGauge, type CacheMaintenanceCounter, type DownloadJobResult, type Logger, type QueueCounts } from '@scenecache/core';

/** What a job waited for when it got out of the way (`scenecache_lock_waits_total{reason}`). */
export const LOCK_WAIT_REASONS = ['scene', 'band', 'upstream-slot', 'upstream-budget'] as const;
export type LockWaitReason = (typeof LOCK_WAIT_REASONS)[number];

/** Where the scrape-time gauges read from. */
export interface WorkerMetricsSources {
  /** The scene download queue (any connection). */
  queue: QueueCounts;
  /** Upstream slots held fleet-wide now (`AdvisoryLocks.upstreamSlotsInUse`). */
  upstreamSlotsInUse(): Promise<number>;
  /** `UPSTREAM_CONCURRENCY`, exported as `scenecache_upstream_slots_limit`. */
  upstreamSlotsLimit: number;
  logger: Logger;
}

/** Histogram buckets of a job's duration (seconds): cache hits take ms, 1 GB downloads minutes. */
const JOB_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200];

/** One worker process's metrics: record through its methods, scrape through `registry`. */
export class WorkerMetrics {
  /** This worker's registry (default process metrics included). */
  readonly registry = new Registry();
  readonly #jobs: Counter<'status' | 'cache_status'>;
  readonly #duration: Histogram<'cache_status'>;
  readonly #upstreamBytes: Counter;
  readonly #upstreamFiles: Counter;
  readonly #deliveredBytes: Counter;
  readonly #lockWaits: Counter<'reason'>;
  readonly #rateLimited: Counter;
  readonly #outageHandBacks: Counter;
  readonly #cacheRemovals: Record<CacheMaintenanceCounter, Counter>;
  readonly #bucketListed: Gauge<'unit'>;

  /**
   * Create the metrics; `sources` (optional, so unit uses need no Redis or Postgres) feed the
   * gauges read at scrape time. A failing source is logged and its gauge reads NaN for that
   * scrape; the scrape itself never fails.
   */
  constructor(sources?: WorkerMetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#jobs = new Counter({
      name: 'scenecache_jobs_total',
      help: 'Jobs finished by this worker, by status (completed|failed; failed = final failure, no retry left) and cache_status (reused|downloaded; none for failures).',
      labelNames: ['status', 'cache_status'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'scenecache_job_duration_seconds',
      help: 'Duration of completed jobs (first start to completion, waits included), by cache_status.',
      labelNames: ['cache_status'],
      buckets: JOB_DURATION_BUCKETS,
      registers,
    });
    this.#upstreamBytes = new Counter({ name: 'scenecache_upstream_bytes_total', help: 'Band file bytes downloaded from CDSE (verified files only).', registers });
    this.#upstreamFiles = new Counter({ name: 'scenecache_upstream_files_total', help: 'Band files downloaded from CDSE (verified files only).', registers });
    this.#deliveredBytes = new Counter({
      name: 'scenecache_delivered_bytes_total',
      help: 'Bytes copied into tenant buckets by completed jobs (their bytes_copied).',
      registers,
    });
    this.#lockWaits = new Counter({
      name: 'scenecache_lock_waits_total',
      help: 'Times a job got out of the way (delayed) because another job downloaded one of its bands (reason=band) or prepared its product (reason=scene), every upstream slot was taken (reason=upstream-slot), or the monthly transfer budget was used up (reason=upstream-budget).',
      labelNames: ['reason'],
      registers,
    });
    this.#rateLimited = new Counter({ name: 'scenecache_upstream_rate_limited_total', help: 'HTTP 429 answers received from CDSE (absorbed by backing off or not).', registers });
    this.#outageHandBacks = new Counter({
      name: 'scenecache_dependency_outage_handbacks_total',
      help: 'Job runs handed back to the queue without spending an attempt because Postgres, Redis or S3 was unavailable (or an advisory-lock session died with it).',
      registers,
    });
    this.#cacheRemovals = buildCacheMaintenanceCounters((config) => new Counter({ ...config, registers }));
    this.#bucketListed = new Gauge({
      name: 'scenecache_global_bucket_listed',
      help: "The global bucket under sentinel-2/ as this worker's last cache maintenance run listed it: unit=objects or bytes (orphans included; absent until a run has listed it).",
      labelNames: ['unit'],
      registers,
    });
    // Every labelled series exists from the start at 0: increase()/rate() see a process's first
    // failure (a series born at 1 has no earlier sample to grow from, so it would count 0).
    for (const cacheStatus of ['reused', 'downloaded'] as const) {
      this.#jobs.inc({ status: 'completed', cache_status: cacheStatus }, 0);
      this.#duration.zero({ cache_status: cacheStatus });
    }
    this.#jobs.inc({ status: 'failed', cache_status: 'none' }, 0);
    for (const reason of LOCK_WAIT_REASONS) this.#lockWaits.inc({ reason }, 0);
    if (!sources) return;

    const { queue, logger } = sources;
    new Gauge({ ...queueDepthGauge(queue, logger), registers });
    new Gauge({
      name: 'scenecache_upstream_slots_in_use',
      help: 'Upstream (CDSE) download slots held fleet-wide, read from Postgres advisory locks at scrape time.',
      registers,
      async collect() {
        this.reset();
        try {
          this.set(await sources.upstreamSlotsInUse());
        } catch (err) {
          logger.warn({ err }, 'metrics: could not read the upstream slots in use');
          // NaN, not the 0 prom-client would report after its reset: "unknown", not "idle".
          this.set(Number.NaN);
        }
      },
    });
    new Gauge({ name: 'scenecache_upstream_slots_limit', help: 'Upstream download slots of the fleet (UPSTREAM_CONCURRENCY).', registers }).set(sources.upstreamSlotsLimit);
  }

  /** Count a completed job and observe its duration (`result.duration_ms`, ms) and delivered bytes. */
  jobCompleted(result: Pick<DownloadJobResult, 'cache_status' | 'duration_ms' | 'bytes_copied'>): void {
    this.#jobs.inc({ status: 'completed', cache_status: result.cache_status });
    this.#duration.observe({ cache_status: result.cache_status }, result.duration_ms / 1000);
    this.#deliveredBytes.inc(result.bytes_copied);
  }

  /** Count a job that failed for good (no attempt left, or not retryable). */
  jobFailed(): void {
    this.#jobs.inc({ status: 'failed', cache_status: 'none' });
  }

  /** Count one band file fetched and verified from upstream (`bytes`: its size in bytes). */
  upstreamFile(bytes: number): void {
    this.#upstreamFiles.inc();
    this.#upstreamBytes.inc(bytes);
  }

  /** Count a job delayed to wait for `reason`. */
  lockWait(reason: LockWaitReason): void {
    this.#lockWaits.inc({ reason });
  }

  /** Count a job run handed back because a dependency of ours was unavailable. */
  dependencyOutage(): void {
    this.#outageHandBacks.inc();
  }

  /** Count products removed from the global cache by maintenance (`bytes`: their objects' bytes). */
  cacheProductsRemoved(reason: 'evicted' | 'expired' | 'invalid', products: number, bytes: number): void {
    this.#cacheRemovals[reason].inc(products);
    this.#cacheRemovals.removedBytes.inc(bytes);
  }

  /** Record the global bucket's size as a maintenance run listed it (objects, bytes). */
  globalBucketListed(objects: number, bytes: number): void {
    this.#bucketListed.set({ unit: 'objects' }, objects);
    this.#bucketListed.set({ unit: 'bytes' }, bytes);
  }

  /** Count orphan objects deleted from the global bucket by maintenance. */
  cacheOrphansRemoved(objects: number): void {
    this.#cacheRemovals.orphans.inc(objects);
  }

  /** Count one 429 answer from CDSE. */
  rateLimited(): void {
    this.#rateLimited.inc();
  }

  /** The Prometheus text exposition of every metric (reads the scrape-time gauges). */
  async scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** `Content-Type` of {@link scrape}'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
