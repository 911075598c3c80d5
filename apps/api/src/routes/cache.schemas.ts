/**
 * Schemas of the `/v1/cache` routes: the query strings (values arrive as strings and are coerced)
 * and the replies (they document the API; replies are built from the repositories' rows).
 */
import { z } from 'zod';
import { CACHED_SCENE_ORDERS, DEFAULT_SCENE_LIST_LIMIT, MAX_SCENE_LIST_LIMIT } from '@scenecache/db';

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

/** A UTC calendar day `YYYY-MM-DD` that exists (2026-02-30 does not). */
const day = z.string().refine((value) => {
  if (!DAY_RE.test(value)) return false;
  const [y, m, d] = value.split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}, 'must be a day YYYY-MM-DD (UTC)');

const tenantId = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a tenant id (lower-case letters, digits and hyphens)');

/** `GET /v1/cache/stats` query: one tenant and/or a range of UTC days (both bounds inclusive). */
export const cacheStatsQuerySchema = z
  .strictObject({
    tenant_id: tenantId.optional(),
    /** First day included. */
    since: day.optional(),
    /** Last day included. */
    until: day.optional(),
  })
  .refine((q) => q.since === undefined || q.until === undefined || q.since <= q.until, {
    message: 'since must not be after until',
    path: ['since'],
  });

/** The figures of a period. Counts are jobs; byte figures are bytes. */
const figures = {
  /** Completed jobs. */
  requests: z.number().int(),
  /** Completed jobs served from the cache. */
  reused: z.number().int(),
  /** Completed jobs that fetched bytes from upstream. */
  downloaded: z.number().int(),
  /** Jobs that failed for good. */
  failed: z.number().int(),
  /** Jobs cancelled (`DELETE /v1/downloads/{id}`). */
  cancelled: z.number().int(),
  /** reused / requests (0…1); `null` when no job completed. */
  hit_ratio: z.number().nullable(),
  /** Bytes fetched from upstream (CDSE). */
  bytes_downloaded: z.number().int(),
  /** Bytes copied into tenant buckets. */
  bytes_delivered: z.number().int(),
  /** bytes_delivered − bytes_downloaded. */
  bytes_saved: z.number().int(),
};

/** `GET /v1/cache/stats` reply. */
export const cacheStatsSchema = z.object({
  totals: z.object(figures),
  /** Days (UTC, day the jobs finished) with at least one finished job, oldest first. */
  per_day: z.array(z.object({ day: z.string(), ...figures })),
  /** Tenants with at least one finished job in the period, most requests first. */
  per_tenant: z.array(z.object({ tenant_id: z.string(), ...figures })),
});

/** `GET /v1/cache/scenes` query. */
export const cachedScenesQuerySchema = z.strictObject({
  /** `most_reused` (download_count), `recent` (last used), `size` (total_bytes); all descending. */
  order: z.enum(CACHED_SCENE_ORDERS).default('most_reused'),
  limit: z.coerce.number().int().min(1).max(MAX_SCENE_LIST_LIMIT).default(DEFAULT_SCENE_LIST_LIMIT),
  level: z.enum(['L1C', 'L2A']).optional(),
  /** MGRS tile, `32TNS` (a leading `T` as in product names is accepted). */
  tile: z
    .string()
    .regex(/^T?\d{2}[A-Z]{3}$/, 'must be an MGRS tile like 32TNS')
    .transform((value) => value.replace(/^T/, ''))
    .optional(),
});

/** One cached scene. */
export const cachedSceneSchema = z.object({
  /** Product name without `.SAFE`. */
  scene_id: z.string(),
  level: z.enum(['L1C', 'L2A']),
  tile: z.string(),
  /** `YYYY-MM-DD` */
  sensing_date: z.string(),
  /** Band ids held in the global bucket. */
  bands: z.array(z.string()),
  /** Bytes of the cached bands. */
  total_bytes: z.number().int(),
  /** Jobs served from the cache for this scene. */
  download_count: z.number().int(),
  last_accessed_at: z.iso.datetime().nullable(),
  is_valid: z.boolean(),
  created_at: z.iso.datetime(),
});

/** `GET /v1/cache/scenes` reply. */
export const cachedScenesSchema = z.object({ items: z.array(cachedSceneSchema) });
export type CachedScenesView = z.infer<typeof cachedScenesSchema>;
