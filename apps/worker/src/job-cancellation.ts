/**
 * Cancelling a running job (`DELETE /v1/downloads/{id}` sets `cancel_requested_at` on its row).
 * The processor reads the flag between its steps — after it marks the job active, after the
 * cache read, after its claim (before any download starts), after its downloads are registered
 * (before it waits or fans out) — before it hands a finished stream's slot on to another of its
 * files, and before it is retried or handed back. It never reads it during a download: a band
 * other jobs may wait for is streamed and registered to the end first. A cancelled job releases
 * what it holds on the way out (the pipeline's `finally` blocks) and ends `cancelled`, no retry.
 */
import { isJobCancelRequested, type DB } from '@scenecache/db';
import type { Kysely } from 'kysely';

/** Thrown at a step boundary when the job's cancel was requested; the processor ends the job `cancelled`. */
export class JobCancelledError extends Error {
  constructor(jobId: string) {
    super(`download job ${jobId} was cancelled`);
    this.name = 'JobCancelledError';
  }
}

/**
 * Whether job `jobId`'s cancel was requested. A failed read counts as "no" (the next check, or
 * the job's end, comes soon enough; an outage must not end jobs).
 */
export async function cancelRequested(db: Kysely<DB>, jobId: string): Promise<boolean> {
  return isJobCancelRequested(db, jobId).catch(() => false);
}

/**
 * A step boundary: stop here when the job's cancel was requested.
 * @throws JobCancelledError
 */
export async function throwIfCancelRequested(db: Kysely<DB>, jobId: string): Promise<void> {
  if (await cancelRequested(db, jobId)) throw new JobCancelledError(jobId);
}
