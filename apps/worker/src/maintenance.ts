/**
 * Scheduled maintenance, run by the workers: a BullMQ queue of its own (`scenecache-maintenance`)
 * with job schedulers (`Queue.upsertJobScheduler`, https://docs.bullmq.io/guide/job-schedulers):
 * every worker upserts the same schedulers at start (idempotent: one scheduler per name,
 * fleet-wide) and runs a maintenance worker of concurrency 1, so each scheduled run is taken by one
 * worker of the fleet; a task also holds its own advisory lock, so even a run taken twice (a stalled
 * job) never works twice at once.
 *
 * Tasks:
 * - `download-jobs-retention`: delete finished job rows older than `DOWNLOAD_JOBS_RETENTION_DAYS`
 *   in batches, rollups kept (db `deleteExpiredJobs`); hourly. With retention 0 the scheduler is
 *   removed.
 *
 * A failed run (Postgres or Redis away) is logged and the next scheduled run tries again: nothing
 * is lost by waiting.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { Logger, Settings } from '@scenecache/core';
import { deleteExpiredJobs, type DB } from '@scenecache/db';

/** The maintenance queue's name (beside `SCENE_DOWNLOAD_QUEUE`, under `QUEUE_PREFIX`). */
export const MAINTENANCE_QUEUE = 'scenecache-maintenance';

/** The retention task's scheduler id and job name. */
export const RETENTION_TASK = 'download-jobs-retention';

/** How often retention runs (ms). @defaultValue one hour */
export const RETENTION_INTERVAL_MS = 3_600_000;

/** What {@link startMaintenance} needs. */
export interface MaintenanceDeps {
  settings: Settings;
  db: Kysely<DB>;
  /** A Redis connection BullMQ may use (the worker's; BullMQ duplicates it for blocking reads). */
  connection: Redis;
  logger: Logger;
  /** Interval of the retention task (ms). @defaultValue {@link RETENTION_INTERVAL_MS} */
  retentionIntervalMs?: number;
}

/** The running maintenance of one worker process. */
export interface Maintenance {
  queue: Queue;
  worker: Worker;
  /** Stop taking runs (a run in progress finishes its batch) and close the queue. */
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
  if (retentionDays > 0) {
    await queue.upsertJobScheduler(RETENTION_TASK, { every: deps.retentionIntervalMs ?? RETENTION_INTERVAL_MS }, { name: RETENTION_TASK, opts: { removeOnComplete: 100, removeOnFail: 100 } });
  } else {
    await queue.removeJobScheduler(RETENTION_TASK);
  }

  const abort = new AbortController();
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async (job: Job) => {
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
    async close() {
      abort.abort();
      await worker.close();
      await queue.close();
    },
  };
}
