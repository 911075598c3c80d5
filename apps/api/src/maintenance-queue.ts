/**
 * The API's handle on the workers' maintenance queue (`MAINTENANCE_QUEUE`,
 * `scenecache-maintenance`: the job schedulers of the cache maintenance and the job-row retention,
 * upserted and run by the workers). The API never adds, removes or runs its jobs: it only shows
 * them on bull-board (read-only), so the scheduled runs and their reports are visible next to the
 * download queue. `POST /v1/admin/cache/maintenance` runs the maintenance in the API process
 * itself, not through this queue.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { isDependencyUnavailable, MAINTENANCE_QUEUE, type Logger } from '@scenecache/core';

/**
 * The maintenance queue on a producer connection (share the download queue's: a Queue issues no
 * blocking command), with an `error` listener (an unhandled `error` event would crash the
 * process). Connection errors are debug only: the producer connection already logs them once per
 * outage.
 *
 * @param prefix - BullMQ key prefix (`QUEUE_PREFIX`, the workers' too).
 */
export function createMaintenanceQueue(redis: Redis, prefix: string, logger: Logger): Queue {
  const queue = new Queue(MAINTENANCE_QUEUE, { connection: redis, prefix });
  queue.on('error', (err) => {
    if (isDependencyUnavailable(err)) logger.debug({ err }, 'maintenance queue: Redis connection error');
    else logger.error({ err }, 'maintenance queue error');
  });
  return queue;
}
