/**
 * The download job shapes, named: each is read from the generated OpenAPI types (openapi.ts), so
 * they follow the API whenever `npm run client:generate` runs.
 */
import type { operations } from './openapi.js';

type JsonBody<T> = T extends { content: { 'application/json': infer B } } ? B : never;

/**
 * `POST /v1/downloads` body: `{tenant_id, scene_id, bands?, priority?, callback_url?}`. `scene_id`
 * is a Sentinel-2 L1C/L2A product name (with or without `.SAFE`); `bands` defaults to every band of
 * the level; `priority` orders the tenant's own jobs (lower first); `callback_url` is POSTed the
 * job's view, signed, once it ends.
 */
export type DownloadRequest = JsonBody<operations['enqueueDownload']['requestBody']>;

/** The reply to an enqueue: `{job_id, status, tenant_id, scene_id, bands, priority}` (canonical bands). */
export type EnqueuedJob = JsonBody<operations['enqueueDownload']['responses'][202]>;

/**
 * A job with its result (`GET /v1/downloads/{id}`): `status`, `cache_status` (`reused` |
 * `downloaded`, once completed), `objects` (band → `s3://bucket/key` of the tenant's copy),
 * `bytes_downloaded` / `bytes_copied` (bytes), `duration_ms`, `error` `{code, message}` when
 * failed, `waiting_for` while delayed, timestamps as ISO 8601 strings.
 */
export type Job = JsonBody<operations['getDownload']['responses'][200]>;

/** A job's status. */
export type JobStatus = Job['status'];

/** One page of `GET /v1/downloads`: `items` newest first, `next_cursor` (`null` on the last page). */
export type JobPage = JsonBody<operations['listDownloads']['responses'][200]>;

/**
 * Filters of `GET /v1/downloads` (combined with AND): `tenant_id`, `status`, `cache_status`,
 * `scene_id`, `since` / `until` (ISO 8601 date or date-time: enqueued at or after / before),
 * `limit` (page size, 1–500, default 50) and `cursor` (a page's `next_cursor`).
 */
export type ListFilters = NonNullable<operations['listDownloads']['parameters']['query']>;

/** The statuses a job ends in: it changes no more. */
export const FINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

/** Whether a job in `status` has ended (completed, failed or cancelled). */
export function isFinalStatus(status: string): boolean {
  return FINAL_STATUSES.has(status);
}
