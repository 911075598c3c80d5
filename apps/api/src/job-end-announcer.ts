/**
 * What happens when the API itself ends a job (a queued job cancelled): the end is announced as
 * the workers announce the ends they record — the job id is published on
 * `jobEndedChannel(QUEUE_PREFIX)` (long-polls wake up), and a job with a `callback_url` gets its
 * delivery claimed on the row (`callback_state` null → `pending`, exactly once) and added to the
 * callbacks queue (`CALLBACK_QUEUE`, processed by the workers), its body the job's view as it
 * ended. Both are best effort after the row is final: a lost publish is caught by the long-polls'
 * re-checks, a delivery claimed but not added by the workers' sweep of pending callbacks.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import {
  CALLBACK_QUEUE,
  callbackJobOptions,
  isDependencyUnavailable,
  jobEndedChannel,
  toCallbackJobData,
  type CallbackJobData,
  type Logger,
  type Settings,
} from '@scenecache/core';
import { claimCallbackDelivery, type DB, type DownloadJobRow } from '@scenecache/db';
import { callDependency } from './dependency-call.js';
import type { DependencyTimeouts, EnqueueLogger } from './download-enqueue.js';

/** The callbacks queue as a producer sees it. */
export type CallbackQueue = Queue<CallbackJobData>;

/**
 * The callbacks queue on a producer connection (`createProducerRedis`), with an `error` listener.
 *
 * @param prefix - BullMQ key prefix (`QUEUE_PREFIX`).
 */
export function createCallbackQueue(redis: Redis, prefix: string, logger: Logger): CallbackQueue {
  const queue = new Queue<CallbackJobData>(CALLBACK_QUEUE, { connection: redis, prefix });
  queue.on('error', (err) => {
    if (isDependencyUnavailable(err)) logger.debug({ err }, 'callbacks queue: Redis connection error');
    else logger.error({ err }, 'callbacks queue error');
  });
  return queue;
}

/** What {@link JobEndAnnouncer} needs. */
export interface JobEndAnnouncerDeps {
  readonly db: Kysely<DB>;
  /** A producer connection: PUBLISH. */
  readonly redis: Redis;
  readonly callbackQueue: CallbackQueue;
  readonly settings: Pick<Settings, 'queuePrefix' | 'callbackMaxAttempts' | 'callbackBackoffMs'>;
  readonly timeouts: DependencyTimeouts;
}

/** Announces the ends of jobs the API finalized. */
export class JobEndAnnouncer {
  private readonly channel: string;

  constructor(private readonly deps: JobEndAnnouncerDeps) {
    this.channel = jobEndedChannel(deps.settings.queuePrefix);
  }

  /**
   * Announce that `row` (just finalized) ended: publish it, and enqueue its completion callback
   * once. Never throws: failures are logged.
   */
  async announce(row: DownloadJobRow, log: EnqueueLogger): Promise<void> {
    const { db, redis, callbackQueue, settings, timeouts } = this.deps;
    try {
      await callDependency('Redis', timeouts.redisMs, () => redis.publish(this.channel, row.id), { anyFailure: true });
    } catch (err) {
      log.warn({ err, jobId: row.id }, 'could not publish the job end');
    }
    if (row.callback_url === null) return;
    try {
      const claimed = await callDependency('Postgres', timeouts.postgresMs, () => claimCallbackDelivery(db, row.id));
      if (!claimed) return;
      const data = toCallbackJobData(claimed);
      await callDependency('Redis', timeouts.redisMs, () => callbackQueue.add(CALLBACK_QUEUE, data, { ...callbackJobOptions(settings), jobId: claimed.id }), { anyFailure: true });
      log.info({ jobId: claimed.id, deliveryId: data.delivery_id }, 'completion callback enqueued');
    } catch (err) {
      log.warn({ err, jobId: row.id }, 'could not enqueue the completion callback; the workers\' sweep retries it');
    }
  }
}
