/**
 * How a `download_jobs` row looks on the wire: snake_case, `job_id` for the id, `bands` for the
 * requested bands, the error as `{code, message}` or `null`, timestamps as ISO 8601 strings, the
 * cancel (`cancel_requested`, `cancel_requested_at`, `cancelled_at`) and the completion callback's
 * delivery (`callback`). The schemas and builders live in @scenecache/core (the job contract): the
 * workers POST the same view as a job's completion callback. The zod schemas document the replies
 * (OpenAPI); the functions build them.
 */
import { z } from 'zod';
import { enqueuedJobViewSchema, jobViewSchema, toEnqueuedJobView, toJobView, type EnqueuedJobView, type JobView } from '@scenecache/core';

export { toEnqueuedJobView, toJobView, type EnqueuedJobView, type JobView };

/** The reply to an enqueue: the job's id, status and what was enqueued (canonical bands). */
export const enqueuedJobSchema = enqueuedJobViewSchema;

/** A job with everything `download_jobs` records about it. */
export const jobSchema = jobViewSchema;

/** `GET /v1/downloads` reply. */
export const jobPageSchema = z.object({
  items: z.array(jobSchema),
  /** Pass as `cursor` for the next page; `null` on the last page. */
  next_cursor: z.string().nullable(),
});
export type JobPageView = z.infer<typeof jobPageSchema>;
