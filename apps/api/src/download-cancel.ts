/**
 * Cancelling a download job (`DELETE /v1/downloads/{id}`).
 *
 * 1. The cancel is recorded first (`cancel_requested_at`, if the job is queued or active), so
 *    whatever runs the job from now on sees it.
 * 2. A job BullMQ holds as waiting, prioritized or delayed (waiting for another job's download or
 *    for a retry) is removed from the queue and its row ends `cancelled` at once. `Queue.remove`
 *    refuses a job a worker holds (its lock): one that became active meanwhile keeps the flag.
 * 3. An active job stops at its next step (the worker checks between its steps): its row says
 *    `cancel_requested: true` until then. It never aborts a download: a job streaming bands
 *    finishes and registers them (other jobs may wait for them) and stops before the fan-out.
 *
 * A job with no BullMQ job at all (its enqueue died between the row and the add) is ended at
 * once; should the add still land, the worker finds the row cancelled and runs nothing.
 */
import type { Kysely } from 'kysely';
import { ScenecacheError, type JobStatus } from '@scenecache/core';
import { findJobById, markJobCancelled, requestJobCancel, type DB, type DownloadJobRow } from '@scenecache/db';
import { callDependency } from './dependency-call.js';
import type { DependencyTimeouts, DownloadQueue, EnqueueLogger } from './download-enqueue.js';
import type { JobEndAnnouncer } from './job-end-announcer.js';

/**
 * Outcome of a cancel: `cancelled` (ended now), `already_cancelled` (ended before: idempotent), or
 * `cancel_requested` (active: it stops at its next step).
 */
export type CancelState = 'cancelled' | 'already_cancelled' | 'cancel_requested';

/** What {@link DownloadCancelService} needs. */
export interface DownloadCancelDeps {
  readonly db: Kysely<DB>;
  readonly queue: DownloadQueue;
  readonly announcer: JobEndAnnouncer;
  readonly timeouts: DependencyTimeouts;
}

/** 409 `job_finished`: a completed or failed job cannot be cancelled. */
function jobFinished(id: string, status: JobStatus): ScenecacheError {
  return new ScenecacheError('job_finished', `download job ${id} has already ${status === 'completed' ? 'completed' : 'failed'}: there is nothing to cancel`, { httpStatus: 409 });
}

/** Cancels download jobs. */
export class DownloadCancelService {
  constructor(private readonly deps: DownloadCancelDeps) {}

  /**
   * Cancel the job of `row` (already checked to be visible to the caller).
   *
   * @returns the row after the cancel and what happened.
   * @throws ScenecacheError `job_finished` (409) when the job completed or failed (also when it
   *   did so during the cancel); `service_unavailable` (503) when Postgres or Redis fails (the
   *   cancel request stays recorded: retrying is safe).
   */
  async cancel(row: DownloadJobRow, log: EnqueueLogger): Promise<{ row: DownloadJobRow; state: CancelState }> {
    const { db, queue, timeouts } = this.deps;
    const id = row.id;
    const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);
    const redis = <T>(call: () => Promise<T>) => callDependency('Redis', timeouts.redisMs, call, { anyFailure: true });
    /** The row as it is now, when it ended meanwhile: its outcome. */
    const ended = async (): Promise<{ row: DownloadJobRow; state: CancelState } | undefined> => {
      const now = await postgres(() => findJobById(db, id));
      if (!now) throw new ScenecacheError('not_found', `no download job ${id}`, { httpStatus: 404 });
      if (now.status === 'cancelled') return { row: now, state: 'already_cancelled' };
      if (now.status === 'completed' || now.status === 'failed') throw jobFinished(id, now.status);
      return undefined;
    };

    if (row.status === 'cancelled') return { row, state: 'already_cancelled' };
    if (row.status === 'completed' || row.status === 'failed') throw jobFinished(id, row.status);
    const flagged = await postgres(() => requestJobCancel(db, id));
    if (!flagged) return (await ended()) ?? { row, state: 'cancel_requested' };

    const state = await redis(() => queue.getJobState(id));
    if (state === 'active') return { row: flagged, state: 'cancel_requested' };
    if (state === 'completed' || state === 'failed') {
      // A worker just ended it; its row is written before BullMQ moves the job, so it is final.
      return (await ended()) ?? { row: flagged, state: 'cancel_requested' };
    }
    // Waiting, prioritized or delayed: out of the queue, unless a worker took it meanwhile (its
    // lock makes the remove fail: the flag stands). No BullMQ job at all: nothing will run it.
    const removed = state === 'unknown' || (await redis(() => queue.remove(id))) === 1;
    if (!removed) {
      log.info({ jobId: id }, 'cancel requested: the job became active; it stops at its next step');
      return { row: flagged, state: 'cancel_requested' };
    }
    const cancelled = await postgres(() => markJobCancelled(db, id));
    if (!cancelled) return (await ended()) ?? { row: flagged, state: 'cancel_requested' };
    log.info({ jobId: id, bullmqState: state }, 'download job cancelled');
    await this.deps.announcer.announce(cancelled, log);
    return { row: cancelled, state: 'cancelled' };
  }
}
