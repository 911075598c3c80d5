/**
 * A job's end, announced by the worker that recorded it (completed, failed for good, cancelled,
 * or failed as `worker_lost` by the stalled check): its id is published on
 * `jobEndedChannel(QUEUE_PREFIX)` (the API's long-polls wake up), and a job with a `callback_url`
 * gets its delivery claimed on the row (`callback_state` null → `pending`: exactly one announcer
 * ever wins, however often a job's end is recorded) and added to `CALLBACK_QUEUE` under the job's
 * id, its body the job's view as it ended.
 *
 * Best effort after the row is final, never failing the job: a lost publish is caught by the
 * long-polls' re-checks, a claimed delivery that never reached the queue by the sweep
 * ({@link CallbackDelivery}).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { CALLBACK_QUEUE, callbackJobOptions, jobEndedChannel, toCallbackJobData, type CallbackJobData, type Logger, type Settings } from '@scenecache/core';
import { claimCallbackDelivery, type DB, type DownloadJobRow } from '@scenecache/db';

/** What {@link JobEndAnnouncer} needs. */
export interface JobEndAnnouncerDeps {
  readonly db: Kysely<DB>;
  /** A command connection (PUBLISH). */
  readonly redis: Redis;
  /** `CALLBACK_QUEUE` under `QUEUE_PREFIX`. */
  readonly callbackQueue: Queue<CallbackJobData>;
  readonly settings: Pick<Settings, 'queuePrefix' | 'callbackMaxAttempts' | 'callbackBackoffMs'>;
}

/** Announces the ends of the jobs this worker recorded. */
export class JobEndAnnouncer {
  private readonly channel: string;

  constructor(private readonly deps: JobEndAnnouncerDeps) {
    this.channel = jobEndedChannel(deps.settings.queuePrefix);
  }

  /** Add the delivery of a row whose callback is claimed (`pending`) to the queue; a no-op when it is queued already. */
  async enqueueDelivery(row: DownloadJobRow): Promise<CallbackJobData> {
    const data = toCallbackJobData(row);
    await this.deps.callbackQueue.add(CALLBACK_QUEUE, data, { ...callbackJobOptions(this.deps.settings), jobId: row.id });
    return data;
  }

  /**
   * Announce that `row` (just finalized) ended. Never throws: failures are logged on `log`.
   */
  async announce(row: DownloadJobRow, log: Logger): Promise<void> {
    try {
      await this.deps.redis.publish(this.channel, row.id);
    } catch (err) {
      log.warn({ err }, 'could not publish the job end');
    }
    if (row.callback_url === null) return;
    try {
      const claimed = await claimCallbackDelivery(this.deps.db, row.id);
      if (!claimed) return;
      const data = await this.enqueueDelivery(claimed);
      log.info({ deliveryId: data.delivery_id }, 'completion callback enqueued');
    } catch (err) {
      log.warn({ err }, 'could not enqueue the completion callback; the sweep of pending callbacks retries it');
    }
  }
}
