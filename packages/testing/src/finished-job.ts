/**
 * A `download_jobs` row taken through the repositories to its end (queued → active → completed or
 * failed for good) and then dated, for tests of the statistics, the API's stats and the dashboard.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { insertQueuedJob, markJobActive, markJobCompleted, markJobFailed, type DB } from '@scenecache/db';

/** How a seeded job ended: completed with its figures (bytes), or failed for good. */
export type FinishedJobOutcome = { cache_status: 'reused' | 'downloaded'; bytes_downloaded: number; bytes_copied: number } | 'failed';

/** What {@link insertFinishedJob} seeds: one band (`B04`) of `sceneId` for `tenantId`. */
export interface FinishedJob {
  tenantId: string;
  sceneId: string;
  /** When it finished (dashboards group by this day). */
  finishedAt: Date | string;
  /** When it was enqueued; omitted: as the repositories stamped it (now). */
  enqueuedAt?: Date;
  outcome: FinishedJobOutcome;
  /** `duration_ms` of a completed job. @defaultValue 10 */
  durationMs?: number;
  /** `error_message` of a failed job. @defaultValue `boom` */
  errorMessage?: string;
}

/** Insert one finished job (see the module comment). @returns its id. */
export async function insertFinishedJob(db: Kysely<DB>, job: FinishedJob): Promise<string> {
  const id = randomUUID();
  const { tenantId, sceneId, outcome } = job;
  await insertQueuedJob(db, { id, tenantId, sceneId, bands: ['B04'] });
  await markJobActive(db, { id, tenantId, sceneId, bands: ['B04'], workerId: 'w1', attempt: 1 });
  if (outcome === 'failed') {
    await markJobFailed(db, id, { code: 'upstream_error', message: job.errorMessage ?? 'boom', attempt: 1, final: true });
  } else {
    await markJobCompleted(
      db,
      id,
      {
        scene_id: sceneId,
        tenant_id: tenantId,
        cache_status: outcome.cache_status,
        bands_downloaded: outcome.cache_status === 'downloaded' ? ['B04'] : [],
        bands_reused: outcome.cache_status === 'reused' ? ['B04'] : [],
        bytes_downloaded: outcome.bytes_downloaded,
        bytes_copied: outcome.bytes_copied,
        objects: { B04: `s3://t-${tenantId}/${sceneId}/B04.jp2` },
        duration_ms: job.durationMs ?? 10,
        message: 'ok',
      },
      'w1',
    );
  }
  // markJob* stamp now(): date the row as the test needs.
  await db
    .updateTable('download_jobs')
    .set({ finished_at: new Date(job.finishedAt), ...(job.enqueuedAt ? { enqueued_at: job.enqueuedAt } : {}) })
    .where('id', '=', id)
    .execute();
  return id;
}
