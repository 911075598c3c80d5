/**
 * Schemas of the global cache's life-cycle routes — `GET /v1/cache/usage`,
 * `POST /v1/admin/cache/maintenance`, `DELETE /v1/admin/tenants/{tenant_id}` — and the views that
 * turn the domain's results (camelCase, `Date`s) into their snake_case JSON replies. Byte figures
 * are bytes, durations ms, instants ISO 8601 (UTC).
 */
import { z } from 'zod';
import type { CacheUsage } from '@scenecache/db';
import { EVICTION_TARGET_RATIO, type MaintenanceReport, type RemovalSummary } from '@scenecache/global-cache';
import type { OffboardingResult } from '../tenant-offboarding.js';

const count = z.number().int();

/** What the global cache registers (`global_scene_cache`), as `GET /v1/cache/usage` and the maintenance report show it. */
export const cacheUsageFiguresSchema = z.object({
  /** Bytes of every row, valid and invalid (what `GLOBAL_CACHE_MAX_BYTES` limits). */
  bytes: count.describe('Bytes of the band objects every row describes, valid and invalid (what GLOBAL_CACHE_MAX_BYTES limits)'),
  /** Band objects the rows describe. */
  objects: count.describe('Band objects the rows describe'),
  /** Rows (products). */
  products: count.describe('Cached products (rows), valid and invalid'),
  /** Of `products`, the invalid ones (objects kept until maintenance deletes them). */
  invalid_products: count.describe('Of products, the invalid ones: their objects stay until the maintenance deletes them'),
  /** Bytes of the invalid rows. */
  invalid_bytes: count.describe('Bytes of the invalid rows'),
  /** The last use of the least recently used valid product (ISO 8601); `null` when none. */
  oldest_access_at: z.iso
    .datetime()
    .nullable()
    .describe('Last use of the least recently used valid product (the latest of its creation, a band registered into it and the last job served from it); null when no valid product is cached'),
});
export type CacheUsageFiguresView = z.infer<typeof cacheUsageFiguresSchema>;

/** `GET /v1/cache/usage` query: none (an unknown parameter is 400, as on every route). */
export const cacheUsageQuerySchema = z.strictObject({});

/** `GET /v1/cache/usage` reply: the figures, the budget and the life-cycle settings. */
export const cacheUsageReplySchema = cacheUsageFiguresSchema.extend({
  /** `GLOBAL_CACHE_MAX_BYTES`; `null`: no budget. */
  budget_bytes: count.nullable().describe('GLOBAL_CACHE_MAX_BYTES; null when no budget is set'),
  /** bytes / budget_bytes (may exceed 1); `null` without a budget. */
  used_ratio: z.number().nullable().describe('bytes / budget_bytes (above 1 when over budget); null without a budget'),
  /** bytes − budget_bytes when positive, else 0; `null` without a budget. */
  bytes_over_budget: count.nullable().describe('bytes − budget_bytes when over budget, else 0; null without a budget'),
  /** What eviction brings the cache down to: 90 % of the budget (bytes); `null` without a budget. */
  eviction_target_bytes: count.nullable().describe('Eviction brings the cache down to this: 90 % of the budget; null without a budget'),
  /** `CACHE_UNUSED_TTL_DAYS`; `null`: products never expire. */
  unused_ttl_days: count.nullable().describe('CACHE_UNUSED_TTL_DAYS: products unused this long are deleted; null: never'),
  /** `CACHE_INVALID_RETENTION_DAYS`. */
  invalid_retention_days: count.describe('CACHE_INVALID_RETENTION_DAYS: invalid entries are deleted this long after their invalidation'),
  /** `MAINTENANCE_INTERVAL_MS`. */
  maintenance_interval_ms: count.describe("MAINTENANCE_INTERVAL_MS: how often the workers' scheduled maintenance runs"),
});
export type CacheUsageReply = z.infer<typeof cacheUsageReplySchema>;

/** The settings {@link toCacheUsageReply} reports (this API's own; keep them equal to the workers'). */
export interface CacheLifecycleSettings {
  /** `GLOBAL_CACHE_MAX_BYTES` (bytes); `undefined`: no budget. */
  globalCacheMaxBytes: number | undefined;
  /** `CACHE_UNUSED_TTL_DAYS`; `undefined`: never. */
  cacheUnusedTtlDays: number | undefined;
  /** `CACHE_INVALID_RETENTION_DAYS`. */
  cacheInvalidRetentionDays: number;
  /** `MAINTENANCE_INTERVAL_MS` (ms). */
  maintenanceIntervalMs: number;
}

/** The figures of a {@link CacheUsage}, as JSON. */
export function toUsageFiguresView(usage: CacheUsage): CacheUsageFiguresView {
  return {
    bytes: usage.bytes,
    objects: usage.objects,
    products: usage.products,
    invalid_products: usage.invalidProducts,
    invalid_bytes: usage.invalidBytes,
    oldest_access_at: usage.oldestAccessAt?.toISOString() ?? null,
  };
}

/** The `GET /v1/cache/usage` reply of `usage` under `settings`. */
export function toCacheUsageReply(usage: CacheUsage, settings: CacheLifecycleSettings): CacheUsageReply {
  const budget = settings.globalCacheMaxBytes;
  return {
    ...toUsageFiguresView(usage),
    budget_bytes: budget ?? null,
    used_ratio: budget === undefined ? null : usage.bytes / budget,
    bytes_over_budget: budget === undefined ? null : Math.max(0, usage.bytes - budget),
    eviction_target_bytes: budget === undefined ? null : Math.floor(budget * EVICTION_TARGET_RATIO),
    unused_ttl_days: settings.cacheUnusedTtlDays ?? null,
    invalid_retention_days: settings.cacheInvalidRetentionDays,
    maintenance_interval_ms: settings.maintenanceIntervalMs,
  };
}

/** `POST /v1/admin/cache/maintenance` body (optional: no body — Fastify's `null` — is `{}`). */
export const maintenanceBodySchema = z
  .strictObject({
    /** Report what a run would do now; take no lock, change nothing. */
    dry_run: z.boolean().default(false).describe('Report what a run would do now, without taking the lock or changing anything'),
  })
  .nullish();

/** Products removed by one rule of a run. */
const removalSchema = z.object({
  /** Products (rows) removed (dry run: that would be). */
  products: count,
  /** Bytes of their band objects. */
  bytes: count,
  /** Band objects deleted from the global bucket. */
  objects: count,
  /** Their scene ids, in the order removed, at most 100. */
  scene_ids: z.array(z.string()).describe('Scene ids in the order removed, at most 100'),
  /** Whether `scene_ids` was cut at 100. */
  scene_ids_truncated: z.boolean(),
});

/** `POST /v1/admin/cache/maintenance` reply: what the run did (dry run: would do). */
export const maintenanceReplySchema = z.object({
  dry_run: z.boolean(),
  /** When the run started (ISO 8601). */
  started_at: z.iso.datetime(),
  /** How long it took (ms). */
  duration_ms: count,
  /** `GLOBAL_CACHE_MAX_BYTES` the run evicted against; `null`: no budget, no eviction. */
  budget_bytes: count.nullable(),
  /** `CACHE_UNUSED_TTL_DAYS` the run expired with; `null`: no expiry. */
  unused_ttl_days: count.nullable(),
  /** `CACHE_INVALID_RETENTION_DAYS` the run used. */
  invalid_retention_days: count,
  usage_before: cacheUsageFiguresSchema,
  /** After the run; dry run: `bytes`, `objects` and `products` as the run would leave them, the other figures as before. */
  usage_after: cacheUsageFiguresSchema.describe('After the run. Dry run: bytes, objects and products as the run would leave them; the other figures as before'),
  /** Incomplete multipart uploads older than a day aborted; `supported: false` when the store cannot list them (s3rver). */
  multipart_uploads: z.object({ aborted: count, supported: z.boolean() }),
  /** Invalid entries past `CACHE_INVALID_RETENTION_DAYS`, deleted with their objects. */
  invalid_removed: removalSchema,
  /** Valid products unused for `CACHE_UNUSED_TTL_DAYS`, deleted with their objects. */
  expired: removalSchema,
  /** Products evicted to bring the cache to 90 % of the budget: invalid first, then least recently used. */
  evicted: removalSchema,
  /** Objects under `sentinel-2/` no row described, older than a day, deleted. */
  orphans: z.object({ objects: count, bytes: count }),
  /** Band entries whose object was missing or truncated, dropped; products left with no band marked invalid. */
  vanished: z.object({ bands: count, products_invalidated: count, scene_ids: z.array(z.string()) }),
  /** The bucket under `sentinel-2/` as the run listed it (after its deletions); `null` when it stopped before. */
  bucket_listing: z.object({ objects: count, bytes: count }).nullable(),
  /** Products skipped because a job was downloading them (the next run handles them), at most 100. */
  skipped: z.array(z.string()),
  /** Whether the run stopped early (the API shutting down); batches done stay done. */
  aborted: z.boolean(),
});
export type MaintenanceReply = z.infer<typeof maintenanceReplySchema>;

function toRemovalView(r: RemovalSummary): MaintenanceReply['evicted'] {
  return { products: r.products, bytes: r.bytes, objects: r.objects, scene_ids: r.sceneIds, scene_ids_truncated: r.sceneIds.length < r.products };
}

/** The JSON reply of a maintenance report (one that ran: `report.ran`). */
export function toMaintenanceReply(report: MaintenanceReport, settings: Pick<CacheLifecycleSettings, 'cacheUnusedTtlDays' | 'cacheInvalidRetentionDays'>): MaintenanceReply {
  return {
    dry_run: report.dryRun,
    started_at: report.startedAt.toISOString(),
    duration_ms: report.durationMs,
    budget_bytes: report.budgetBytes,
    unused_ttl_days: settings.cacheUnusedTtlDays ?? null,
    invalid_retention_days: settings.cacheInvalidRetentionDays,
    usage_before: toUsageFiguresView(report.usageBefore),
    usage_after: toUsageFiguresView(report.usageAfter),
    multipart_uploads: { ...report.multipartUploads },
    invalid_removed: toRemovalView(report.invalidRemoved),
    expired: toRemovalView(report.expired),
    evicted: toRemovalView(report.evicted),
    orphans: { ...report.orphans },
    vanished: { bands: report.vanished.bands, products_invalidated: report.vanished.productsInvalidated, scene_ids: report.vanished.sceneIds },
    bucket_listing: report.bucketListing && { ...report.bucketListing },
    skipped: report.skipped,
    aborted: report.aborted,
  };
}

/** `DELETE /v1/admin/tenants/{tenant_id}` path: the id is checked by `tenantBucketName` (400 `invalid_tenant_id`). */
export const tenantParamsSchema = z.strictObject({
  tenant_id: z
    .string()
    .describe('The tenant id: lower-case letters, digits and hyphens, starting and ending with a letter or digit; TENANT_BUCKET_PREFIX + id must be a valid S3 bucket name'),
});

/** A boolean query flag: `true` or `false`. */
const flag = z.enum(['true', 'false']).transform((value) => value === 'true');

/** `DELETE /v1/admin/tenants/{tenant_id}` query: what to remove (all `false` by default). */
export const offboardQuerySchema = z.strictObject({
  /** Report what would be removed; change nothing. */
  dry_run: flag.optional().describe('true: report what would be removed, change nothing (S3 is only listed)'),
  /** Also delete every object in the tenant's bucket. */
  delete_objects: flag.optional().describe("true: also delete every object in the tenant's bucket (TENANT_BUCKET_PREFIX + tenant_id); needs S3"),
  /** Also delete the tenant's finished job rows (history and statistics). */
  purge_jobs: flag.optional().describe("true: also delete the tenant's finished job rows; its jobs then leave the statistics too"),
});

/** `DELETE /v1/admin/tenants/{tenant_id}` reply: what was (dry run: would be) removed. */
export const offboardReplySchema = z.object({
  tenant_id: z.string(),
  /** The tenant's bucket, `TENANT_BUCKET_PREFIX` + tenant id. */
  bucket: z.string(),
  dry_run: z.boolean(),
  delete_objects: z.boolean(),
  purge_jobs: z.boolean(),
  /** The tenant has queued or active jobs: a run (not dry) is refused with 409 `tenant_busy`. */
  busy: z.boolean().describe('The tenant has queued or active jobs: a run that is not dry is refused with 409 tenant_busy'),
  tenant_scenes: z.object({
    /** `tenant_scenes` rows deleted (dry run: that would be). */
    deleted: count,
    /** Band objects those rows listed. */
    band_objects: count,
  }),
  /** Objects deleted from the bucket (dry run: listed); `null` without `delete_objects=true`. */
  objects: z
    .object({
      /** Whether the bucket exists (a missing bucket holds nothing: 0 objects). */
      bucket_exists: z.boolean(),
      deleted: count,
      /** Bytes of those objects, as listed. */
      bytes: count,
    })
    .nullable()
    .describe('Objects deleted from the bucket (dry run: that would be); null without delete_objects=true'),
  jobs: z.object({
    /** Finished job rows deleted (dry run: that would be); 0 without `purge_jobs=true`. */
    purged: count,
    /** Job rows left (history): all of them without `purge_jobs`, else the unfinished ones. */
    kept: count,
    /** Queued or active jobs now. */
    unfinished: count,
  }),
});
export type OffboardReply = z.infer<typeof offboardReplySchema>;

/** The JSON reply of an offboarding result. */
export function toOffboardReply(result: OffboardingResult): OffboardReply {
  return {
    tenant_id: result.tenantId,
    bucket: result.bucket,
    dry_run: result.dryRun,
    delete_objects: result.deleteObjects,
    purge_jobs: result.purgeJobs,
    busy: result.unfinishedJobs > 0,
    tenant_scenes: { deleted: result.tenantScenesDeleted, band_objects: result.tenantSceneObjects },
    objects: result.objects && { bucket_exists: result.objects.bucketExists, deleted: result.objects.deleted, bytes: result.objects.bytes },
    jobs: { purged: result.jobsPurged, kept: result.jobsKept, unfinished: result.unfinishedJobs },
  };
}
