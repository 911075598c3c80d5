/**
 * A worker process's resources, wired once: S3 (configured or embedded), the database pool, the
 * lock pool, Redis, the queue handle used to wake waiters, the CDSE client, the BullMQ worker and
 * the scheduled maintenance (maintenance.ts).
 * `main.ts` runs one per process; tests run one in-process the same way.
 */
import { hostname } from 'node:os';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { CALLBACK_QUEUE, isDependencyUnavailable, SCENE_DOWNLOAD_QUEUE, type CallbackJobData, type Logger, type Settings } from '@scenecache/core';
import { AdvisoryLocks, createDb, markJobLost, pingDb } from '@scenecache/db';
import { CdseClient } from '@scenecache/copernicus';
import { GlobalCache } from '@scenecache/global-cache';
import { createS3Client, ObjectStore, resolveS3Endpoint } from '@scenecache/storage';
import { MAX_STALLED_COUNT, startDownloadWorker, type DownloadWorkerOptions } from './download-worker.js';
import { DependencyWatch } from './dependency-watch.js';
import { checkRedisEvictionPolicy, workerRedisOptions } from './worker-redis.js';
import { SceneWaiters } from './scene-waiters.js';
import type { WorkerDeps } from './scene-download.processor.js';
import type { ShutdownStep } from './shutdown.js';
import { WorkerMetrics } from './worker-metrics.js';
import { startMaintenance } from './maintenance.js';
import { JobEndAnnouncer } from './job-end-announcer.js';
import { startCallbackDelivery, type CallbackDelivery } from './callback-delivery.js';

/** A running worker and what it owns. */
export interface WorkerRuntime {
  deps: WorkerDeps;
  worker: ReturnType<typeof startDownloadWorker>;
  /** The BullMQ connection (ready = connected). */
  connection: Redis;
  /** Background probes of Redis and Postgres (for `/readyz` and `/healthz`). */
  dependencies: DependencyWatch;
  /** This worker's Prometheus metrics (served at `/metrics` by the health server). */
  metrics: WorkerMetrics;
  /** The completion callbacks' delivery (its own BullMQ Worker) and sweep. */
  callbacks: CallbackDelivery;
  /** Resources to close after the worker has drained, in order. */
  closeSteps: ShutdownStep[];
  /** Drain the worker and close everything (for tests; processes use the shutdown plan). */
  close(): Promise<void>;
}

/**
 * Wire and start a worker.
 * @throws when S3, Postgres or Redis cannot be reached at start.
 */
export async function startWorkerRuntime(settings: Settings, logger: Logger, options: DownloadWorkerOptions = {}): Promise<WorkerRuntime> {
  const workerId = `${hostname()}:${process.pid}`;
  const s3 = await resolveS3Endpoint(settings, logger);
  const store = new ObjectStore(createS3Client({ ...settings, s3Endpoint: s3.endpoint }));
  await store.ensureBucket(settings.globalBucket);

  const concurrency = options.concurrency ?? settings.workerConcurrency;
  const db = createDb(settings.databaseUrl, { max: concurrency + 2, applicationName: `scenecache-worker ${workerId}`, queryTimeoutMillis: settings.databaseQueryTimeoutMs, logger });
  const locks = new AdvisoryLocks({ connectionString: settings.lockDatabaseUrl, maxConnections: concurrency + 2, queryTimeoutMs: Math.min(settings.databaseQueryTimeoutMs, 10_000), logger });
  // Workers wait for Redis forever (maxRetriesPerRequest: null) instead of failing jobs, but never
  // on a silent socket (worker-redis.ts). BullMQ's connection blocks by design; ours time out.
  const connection = new Redis(settings.redisUrl, workerRedisOptions(undefined));
  connection.on('error', (err) => logger.warn({ err }, 'redis error'));
  const commands = new Redis(settings.redisUrl, workerRedisOptions(settings.redisCommandTimeoutMs));
  commands.on('error', (err) => logger.debug({ err }, 'redis error (commands)'));
  await checkRedisEvictionPolicy(commands, logger);
  const queue = new Queue(SCENE_DOWNLOAD_QUEUE, { connection: commands, prefix: settings.queuePrefix });
  queue.on('error', (err) => logger.error({ err }, 'queue error'));
  const waiters = new SceneWaiters(commands, queue, settings.queuePrefix, logger);
  const metrics = new WorkerMetrics({
    queue,
    upstreamSlotsInUse: () => locks.upstreamSlotsInUse(settings.upstreamConcurrency),
    upstreamSlotsLimit: settings.upstreamConcurrency,
    logger,
  });
  const cdse = new CdseClient({ settings, redis: commands, logger, userAgent: `scenecache-worker (${workerId})`, notFoundTtlSeconds: settings.productNotFoundTtlSeconds, integrityTtlSeconds: settings.upstreamIntegrityTtlSeconds, onRateLimited: () => metrics.rateLimited() });
  // Jobs' ends: published for long-polls, completion callbacks enqueued and delivered here.
  const callbackQueue = new Queue<CallbackJobData>(CALLBACK_QUEUE, { connection: commands, prefix: settings.queuePrefix });
  callbackQueue.on('error', (err) => (isDependencyUnavailable(err) ? logger.debug({ err }, 'callbacks queue: Redis connection error') : logger.error({ err }, 'callbacks queue error')));
  const jobEnds = new JobEndAnnouncer({ db, redis: commands, callbackQueue, settings });
  const callbacks = startCallbackDelivery({ settings, db, logger, callbackQueue, announcer: jobEnds });
  const stalledFailures = watchStalledFailures(settings, db, logger, jobEnds);

  const cache = new GlobalCache({ db, store, bucket: settings.globalBucket, logger });
  const deps: WorkerDeps = { settings, db, locks, store, cache, cdse, waiters, logger, workerId, metrics, jobEnds };
  const worker = startDownloadWorker(deps, connection, options);
  const dependencies = new DependencyWatch({
    probes: { redis: () => commands.ping(), postgres: () => pingDb(db, 3_000) },
    livenessTimeoutMs: settings.dependencyLivenessTimeoutMs,
    logger,
    onLimitExceeded: (dependency) => {
      // Nothing can progress: let go of every advisory lock so other workers take the files over.
      const given = locks.abandonAll(`${dependency} unreachable for longer than DEPENDENCY_LIVENESS_TIMEOUT_MS`);
      logger.error({ dependency, leasesGivenUp: given }, 'gave up this worker\'s advisory locks');
    },
  });
  dependencies.start();
  // Scheduled maintenance (job retention, the global cache), one run fleet-wide at a time.
  const maintenance = await startMaintenance({ settings, db, store, connection, logger, metrics });
  const closeSteps: ShutdownStep[] = [
    { name: 'dependency watch', close: () => Promise.resolve(dependencies.stop()) },
    // Deliveries in flight finish (each within CALLBACK_TIMEOUT_MS); the rest wait in the queue.
    { name: 'callbacks', close: () => callbacks.close() },
    { name: 'maintenance', close: () => maintenance.close() },
    { name: 'queue events', close: () => stalledFailures.close() },
    { name: 'queue', close: () => queue.close() },
    { name: 'callbacks queue', close: () => callbackQueue.close() },
    { name: 'cdse client', close: () => Promise.resolve(cdse.close()) },
    { name: 'locks', close: () => locks.close() },
    { name: 'database', close: () => db.destroy() },
    { name: 'redis', close: () => Promise.all([connection.quit(), commands.quit()]).then(() => undefined) },
    { name: 'embedded s3', close: () => s3.close() },
  ];
  logger.info({ workerId, concurrency, upstreamConcurrency: settings.upstreamConcurrency, s3Endpoint: s3.endpoint }, 'worker started');
  return {
    deps,
    worker,
    connection,
    dependencies,
    metrics,
    callbacks,
    closeSteps,
    async close() {
      await worker.close();
      for (const step of closeSteps) await step.close();
    },
  };
}

/** BullMQ's reason for a job failed by the stalled check (moveStalledJobsToWait.lua). */
const STALLED_LIMIT_REASON = 'job stalled more than allowable limit';

/**
 * Record in `download_jobs` the jobs BullMQ fails by itself when they stall more than
 * `maxStalledCount` times: no processor runs for them, so without this their rows would stay
 * `active` for ever. Every worker listens; the update is idempotent, and the worker whose update
 * ended the row announces the end.
 */
function watchStalledFailures(settings: Settings, db: WorkerDeps['db'], logger: Logger, jobEnds: JobEndAnnouncer): { close(): Promise<void> } {
  // QueueEvents blocks on XREAD: it needs a connection of its own.
  const connection = new Redis(settings.redisUrl, workerRedisOptions(undefined));
  connection.on('error', (err) => logger.warn({ err }, 'redis error (queue events)'));
  const events = new QueueEvents(SCENE_DOWNLOAD_QUEUE, { connection, prefix: settings.queuePrefix });
  events.on('error', (err) => logger.warn({ err }, 'queue events error'));
  events.on('failed', ({ jobId, failedReason }) => {
    if (failedReason !== STALLED_LIMIT_REASON) return;
    markJobLost(db, jobId, `${failedReason}: the workers running it died or lost its lock ${MAX_STALLED_COUNT + 1} times`)
      .then(async (row) => {
        if (!row) return;
        logger.error({ jobId }, 'job failed: stalled too often');
        await jobEnds.announce(row, logger.child({ jobId }));
      })
      .catch((err: unknown) => logger.error({ err, jobId }, 'could not record a stalled job failure'));
  });
  return {
    async close() {
      await events.close();
      connection.disconnect();
    },
  };
}
