/**
 * Scheduled maintenance, run by the workers: a BullMQ queue of its own (`scenecache-maintenance`,
 * shown in bull-board) with job schedulers (`Queue.upsertJobScheduler`,
 * https://docs.bullmq.io/guide/job-schedulers): every worker upserts the same schedulers at start
 * (idempotent: one scheduler per name, fleet-wide) and runs a maintenance worker of concurrency 1,
 * so each scheduled run is taken by one worker of the fleet; a task also holds its own advisory
 * lock, so even a run taken twice (a stalled job), or one started by the admin API meanwhile, never
 * works twice at once.
 *
 * Tasks:
 * - `download-jobs-retention`: delete finished job rows older than `DOWNLOAD_JOBS_RETENTION_DAYS`
 *   in batches, rollups kept (db `deleteExpiredJobs`); hourly. With retention 0 the scheduler is
 *   removed.
 * - `global-cache-maintenance`: the global cache's maintenance (@scenecache/global-cache
 *   `CacheMaintenance`: stale multipart uploads, invalid entries past `CACHE_INVALID_RETENTION_DAYS`,
 *   expiry after `CACHE_UNUSED_TTL_DAYS`, eviction to 90 % of `GLOBAL_CACHE_MAX_BYTES`,
 *   reconciliation of the bucket with the table); every `MAINTENANCE_INTERVAL_MS`.
 *
 * A failed run (Postgres, Redis or S3 away) is logged and the next scheduled run tries again:
 * nothing is lost by waiting, and no download job is affected.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { MAINTENANCE_QUEUE, type Logger, type Settings } from '@scenecache/core';
import { deleteExpiredJobs, type DB } from '@scenecache/db';
import { createCacheMaintenance, type CacheMaintenance } from '@scenecache/global-cache';
import type { ObjectStore } from '@scenecache/storage';
import type { WorkerMetrics } from './worker-metrics.js';

export { MAINTENANCE_QUEUE };

/** The retention task's scheduler id and job name. */
export const RETENTION_TASK = 'download-jobs-retention';

/** The global cache maintenance task's scheduler id and job name. */
export const CACHE_MAINTENANCE_TASK = 'global-cache-maintenance';

/** How often retention runs (ms). @defaultValue one hour */
export const RETENTION_INTERVAL_MS = 3_600_000;

/** What {@link startMaintenance} needs. */
export interface MaintenanceDeps {
  settings: Settings;
  db: Kysely<DB>;
  /** The global bucket's store. */
  store: ObjectStore;
  /** A Redis connection BullMQ may use (the worker's; BullMQ duplicates it for blocking reads). */
  connection: Redis;
  logger: Logger;
  metrics?: WorkerMetrics;
  /** Interval of the retention task (ms). @defaultValue {@link RETENTION_INTERVAL_MS} */
  retentionIntervalMs?: number;
}

/** The running maintenance of one worker process. */
export interface Maintenance {
  queue: Queue;
  worker: Worker;
  cache: CacheMaintenance;
  /** Stop taking runs (a run in progress stops after its batch) and close the queue. */
  close(): Promise<void>;
}

/**
 * Upsert the schedulers and start this process's maintenance worker.
 * @throws when Redis cannot be reached to upsert the schedulers.
 */
export async function startMaintenance(deps: MaintenanceDeps): Promise<Maintenance> {
  const { settings, db, connection, logger } = deps;
  const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: settings.queuePrefix });
  queue.on('error', (err) => logger.warn({ err }, 'maintenance queue error'));
  const retentionDays = settings.downloadJobsRetentionDays;
  const opts = { removeOnComplete: 100, removeOnFail: 100 };
  if (retentionDays > 0) {
    await queue.upsertJobScheduler(RETENTION_TASK, { every: deps.retentionIntervalMs ?? RETENTION_INTERVAL_MS }, { name: RETENTION_TASK, opts });
  } else {
    await queue.removeJobScheduler(RETENTION_TASK);
  }
  await queue.upsertJobScheduler(CACHE_MAINTENANCE_TASK, { every: settings.maintenanceIntervalMs }, { name: CACHE_MAINTENANCE_TASK, opts });
  const cache = createCacheMaintenance(settings, { db, store: deps.store, logger, metrics: deps.metrics });

  const abort = new AbortController();
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async (job: Job) => {
      if (job.name === CACHE_MAINTENANCE_TASK) {
        const report = await cache.run({ signal: abort.signal, log: logger.child({ task: CACHE_MAINTENANCE_TASK, jobId: job.id }) });
        return { ...report, startedAt: report.startedAt.toISOString() };
      }
      if (job.name !== RETENTION_TASK) throw new Error(`unknown maintenance task ${job.name}`);
      const started = Date.now();
      const result = await deleteExpiredJobs(db, retentionDays, { signal: abort.signal });
      const log = { task: RETENTION_TASK, retentionDays, cutoff: result.cutoff.toISOString(), deleted: result.deleted, batches: result.batches, ms: Date.now() - started };
      if (!result.ran) logger.info(log, 'retention: another run holds the lock; skipped');
      else logger.info(log, `retention: deleted ${result.deleted} finished job row(s) older than ${retentionDays} days`);
      return { deleted: result.deleted, ran: result.ran };
    },
    { connection, prefix: settings.queuePrefix, concurrency: 1, autorun: true },
  );
  worker.on('failed', (job, err) => logger.warn({ err, task: job?.name }, 'maintenance run failed; the next scheduled run tries again'));
  worker.on('error', (err) => logger.warn({ err }, 'maintenance worker error'));
  return {
    queue,
    worker,
    cache,
    async close() {
      abort.abort();
      await worker.close();
      await queue.close();
    },
  };
}
