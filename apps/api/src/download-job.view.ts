/**
 * How a `download_jobs` row looks on the wire: snake_case, `job_id` for the id, `bands` for the
 * requested bands, the error as `{code, message}` or `null`, timestamps as ISO 8601 strings.
 * The zod schemas document the replies (OpenAPI); the functions build them.
 */
import { z } from 'zod';
import type { DownloadJobRow } from '@scenecache/db';

const jobStatus = z.enum(['queued', 'active', 'completed', 'failed']);
const cacheStatus = z.enum(['reused', 'downloaded']);

/** The reply to an enqueue: the job's id, status and what was enqueued (canonical bands). */
export const enqueuedJobSchema = z.object({
  job_id: z.string(),
  status: jobStatus,
  tenant_id: z.string(),
  /** Product name without `.SAFE`. */
  scene_id: z.string(),
  bands: z.array(z.string()),
  priority: z.number().int().nullable(),
});
export type EnqueuedJobView = z.infer<typeof enqueuedJobSchema>;

/** A job with everything `download_jobs` records about it. */
export const jobSchema = enqueuedJobSchema.extend({
  cache_status: cacheStatus.nullable(),
  bands_downloaded: z.array(z.string()),
  bands_reused: z.array(z.string()),
  /** Bytes fetched from upstream. */
  bytes_downloaded: z.number().int(),
  /** Bytes server-side copied into the tenant bucket. */
  bytes_copied: z.number().int(),
  /** band → `s3://bucket/key` of the tenant's copy. */
  objects: z.record(z.string(), z.string()).nullable(),
  message: z.string().nullable(),
  attempts: z.number().int(),
  /** Times the job was delayed waiting for another job's download or an upstream slot. */
  waits: z.number().int(),
  /** While the job is delayed: what it waits for (`band_download`, `upstream_slot`, `upstream_budget`, `product_preparation`); null otherwise. */
  waiting_for: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  enqueued_at: z.iso.datetime(),
  started_at: z.iso.datetime().nullable(),
  finished_at: z.iso.datetime().nullable(),
  duration_ms: z.number().int().nullable(),
  worker_id: z.string().nullable(),
});
export type JobView = z.infer<typeof jobSchema>;

/** `GET /v1/downloads` reply. */
export const jobPageSchema = z.object({
  items: z.array(jobSchema),
  /** Pass as `cursor` for the next page; `null` on the last page. */
  next_cursor: z.string().nullable(),
});
export type JobPageView = z.infer<typeof jobPageSchema>;

/** The short view of a job (enqueue replies). */
export function toEnqueuedJobView(row: DownloadJobRow): EnqueuedJobView {
  return {
    job_id: row.id,
    status: row.status,
    tenant_id: row.tenant_id,
    scene_id: row.scene_id,
    bands: row.bands_requested,
    priority: row.priority,
  };
}

/** The full view of a job. */
export function toJobView(row: DownloadJobRow): JobView {
  return {
    ...toEnqueuedJobView(row),
    cache_status: row.cache_status,
    bands_downloaded: row.bands_downloaded,
    bands_reused: row.bands_reused,
    bytes_downloaded: row.bytes_downloaded,
    bytes_copied: row.bytes_copied,
    objects: row.objects,
    message: row.message,
    attempts: row.attempts,
    waits: row.waits,
    waiting_for: row.status === 'queued' ? row.waiting_for : null,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    enqueued_at: row.enqueued_at.toISOString(),
    started_at: row.started_at?.toISOString() ?? null,
    finished_at: row.finished_at?.toISOString() ?? null,
    duration_ms: row.duration_ms,
    worker_id: row.worker_id,
  };
}
