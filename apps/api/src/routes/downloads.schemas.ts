/**
 * Request schemas of the `/v1/downloads` routes beyond the job contract of @scenecache/core
 * (headers, path, query string). Query values arrive as strings and are coerced.
 */
import { z } from 'zod';
import { JOB_ID_PATTERN, MAX_LIST_LIMIT, DEFAULT_LIST_LIMIT } from '@scenecache/db';
import { JOB_STATUSES, parseProductName, ScenecacheError } from '@scenecache/core';

/** Longest `?wait=` of `GET /v1/downloads/{id}` (seconds). */
export const MAX_WAIT_SECONDS = 60;

/**
 * `Idempotency-Key`: 1–200 printable ASCII characters. Other headers pass through untouched.
 */
export const enqueueHeadersSchema = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(/^[\x20-\x7E]{1,200}$/, 'must be 1–200 printable ASCII characters')
    .optional(),
});

/** `/v1/downloads/:id` */
export const jobParamsSchema = z.strictObject({
  id: z.string().regex(JOB_ID_PATTERN, 'must be a job id (1–100 letters, digits, ".", "_" or "-", as POST /v1/downloads returned it)'),
});

/** `GET /v1/downloads/:id` query: the long-poll. */
export const getJobQuerySchema = z.strictObject({
  wait: z.coerce
    .number()
    .int()
    .min(0)
    .max(MAX_WAIT_SECONDS)
    .optional()
    .meta({
      description:
        'Long-poll: answer as soon as the job ends (completed, failed, cancelled) or after this many seconds (0–60) with its current view. 0 or absent: answer at once.',
    }),
});

const ISO_INSTANT_RE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/;

/** Whether `YYYY-MM-DD…` names a real day (Date.parse rolls 2026-02-30 over to March). */
function isRealDay(value: string): boolean {
  const [y, m, d] = [value.slice(0, 4), value.slice(5, 7), value.slice(8, 10)].map(Number) as [number, number, number];
  const day = new Date(Date.UTC(y, m - 1, d));
  return day.getUTCFullYear() === y && day.getUTCMonth() === m - 1 && day.getUTCDate() === d;
}

const instant = z.string().transform((value, ctx) => {
  const ms = ISO_INSTANT_RE.test(value) && isRealDay(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 date (2026-11-22) or date-time with offset (2026-11-22T10:00:00Z)' });
    return z.NEVER;
  }
  return new Date(ms);
});

const sceneId = z
  .string()
  .max(100)
  .transform((value, ctx) => {
    try {
      return parseProductName(value).sceneId;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof ScenecacheError ? 'not a Sentinel-2 L1C/L2A product name' : String(err) });
      return z.NEVER;
    }
  });

/** `GET /v1/downloads` query: filters (combined with AND) and the page. */
export const listJobsQuerySchema = z.strictObject({
  tenant_id: z
    .string()
    .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a tenant id (lower-case letters, digits and hyphens)')
    .optional(),
  status: z.enum(JOB_STATUSES).optional(),
  cache_status: z.enum(['reused', 'downloaded']).optional(),
  /** With or without `.SAFE`. */
  scene_id: sceneId.optional(),
  /** Jobs enqueued at or after. */
  since: instant.optional(),
  /** Jobs enqueued before. */
  until: instant.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).default(DEFAULT_LIST_LIMIT),
  /** `next_cursor` of the previous page. */
  cursor: z.string().min(1).max(600).optional(),
});
