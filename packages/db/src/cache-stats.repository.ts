/**
 * Reads for dashboards: cache statistics from the `cache_daily_stats` / `tenant_daily_stats` views
 * (migration 0002, the one definition of every figure, shared with Grafana) and the cached scenes
 * of `global_scene_cache`.
 *
 * Units: counts are jobs, byte figures are bytes, days are UTC calendar days `YYYY-MM-DD`.
 */
import { sql } from 'kysely';
import { ValidationError } from '@scenecache/core';
import type { Queryable } from './database.js';
import type { CacheStatsFigures } from './schema.js';
import type { ProductLevel } from './scene-cache.repository.js';

/** One day of {@link CacheStats.per_day}. */
export interface DailyCacheStats extends CacheStatsFigures {
  /** UTC day the jobs finished, `YYYY-MM-DD`. */
  day: string;
}

/** One tenant of {@link CacheStats.per_tenant} (its figures summed over the period). */
export interface TenantCacheStats extends CacheStatsFigures {
  tenant_id: string;
}

/** Result of {@link getCacheStats}. */
export interface CacheStats {
  /** The whole period (of the tenant, when filtered). */
  totals: CacheStatsFigures;
  /** Days with at least one finished job (completed, failed or cancelled), oldest first (days without jobs are left out). */
  per_day: DailyCacheStats[];
  /** Tenants with at least one finished job in the period, most requests first, then by id. */
  per_tenant: TenantCacheStats[];
}

/** Filters of {@link getCacheStats}; all optional, combined with AND. */
export interface CacheStatsQuery {
  /** Only this tenant's jobs. */
  tenantId?: string | undefined;
  /** First UTC day included, `YYYY-MM-DD`. */
  since?: string | undefined;
  /** Last UTC day included, `YYYY-MM-DD`. */
  until?: string | undefined;
}

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

function checkDay(value: string | undefined, field: string): void {
  if (value !== undefined && !DAY_RE.test(value)) {
    throw new ValidationError('invalid_payload', `${field} must be a day YYYY-MM-DD`, field);
  }
}

/** Figures with `hit_ratio` derived from the counts (so a sum of days gets the right ratio). */
function figures(counts: Omit<CacheStatsFigures, 'hit_ratio' | 'bytes_saved'>): CacheStatsFigures {
  return {
    requests: counts.requests,
    reused: counts.reused,
    downloaded: counts.downloaded,
    failed: counts.failed,
    cancelled: counts.cancelled,
    hit_ratio: counts.requests === 0 ? null : counts.reused / counts.requests,
    bytes_downloaded: counts.bytes_downloaded,
    bytes_delivered: counts.bytes_delivered,
    bytes_saved: counts.bytes_delivered - counts.bytes_downloaded,
  };
}

/**
 * Cache statistics of a period, read from the views: per day (`cache_daily_stats`, or
 * `tenant_daily_stats` for one tenant), per tenant (`tenant_daily_stats` summed over the period;
 * all time: `job_tenant_totals`, one row per tenant), and the totals (the days summed). Every read
 * is of rollups (migration 0006): a year of 500 tenants costs a few hundred rows all time, and
 * tenants × days of the period otherwise. Jobs count on the UTC day they finished; queued and active jobs
 * are not counted.
 *
 * @throws ValidationError `invalid_payload` (field `since`/`until`) for a malformed day or
 *   `since` after `until`.
 */
export async function getCacheStats(db: Queryable, query: CacheStatsQuery = {}): Promise<CacheStats> {
  checkDay(query.since, 'since');
  checkDay(query.until, 'until');
  if (query.since !== undefined && query.until !== undefined && query.since > query.until) {
    throw new ValidationError('invalid_payload', 'since must not be after until', 'since');
  }
  const { tenantId, since, until } = query;

  const columns = ['requests', 'reused', 'downloaded', 'failed', 'cancelled', 'bytes_downloaded', 'bytes_delivered'] as const;
  let days;
  if (tenantId === undefined) {
    let select = db.selectFrom('cache_daily_stats').select(['day', ...columns]);
    if (since !== undefined) select = select.where('day', '>=', since);
    if (until !== undefined) select = select.where('day', '<=', until);
    days = await select.orderBy('day').execute();
  } else {
    let select = db.selectFrom('tenant_daily_stats').select(['day', ...columns]).where('tenant_id', '=', tenantId);
    if (since !== undefined) select = select.where('day', '>=', since);
    if (until !== undefined) select = select.where('day', '<=', until);
    days = await select.orderBy('day').execute();
  }

  let perTenant;
  if (since === undefined && until === undefined) {
    // All time: one row per tenant, kept by the rollup triggers.
    let tenants = db
      .selectFrom('job_tenant_totals')
      .select(['tenant_id', ...columns])
      .where((eb) => eb.or([eb('requests', '<>', 0), eb('failed', '<>', 0), eb('cancelled', '<>', 0)]));
    if (tenantId !== undefined) tenants = tenants.where('tenant_id', '=', tenantId);
    perTenant = await tenants.orderBy('requests', 'desc').orderBy('tenant_id').execute();
  } else {
    // A period: its days of each tenant, summed.
    let tenants = db
      .selectFrom('tenant_daily_stats')
      .select((eb) => [
        'tenant_id',
        // sum(bigint) is numeric: cast back so the pool parses a number.
        ...columns.map((column) => sql<number>`sum(${eb.ref(column)})::bigint`.as(column)),
      ])
      .groupBy('tenant_id');
    if (tenantId !== undefined) tenants = tenants.where('tenant_id', '=', tenantId);
    if (since !== undefined) tenants = tenants.where('day', '>=', since);
    if (until !== undefined) tenants = tenants.where('day', '<=', until);
    perTenant = await tenants.orderBy(sql`sum(requests)`, 'desc').orderBy('tenant_id').execute();
  }

  const sum = { requests: 0, reused: 0, downloaded: 0, failed: 0, cancelled: 0, bytes_downloaded: 0, bytes_delivered: 0 };
  for (const day of days) for (const column of columns) sum[column] += day[column];

  return {
    totals: figures(sum),
    per_day: days.map((day) => ({ day: day.day, ...figures(day) })),
    per_tenant: perTenant.map((tenant) => ({ tenant_id: tenant.tenant_id, ...figures(tenant) })),
  };
}

/** Orders of {@link listCachedScenes}. */
export const CACHED_SCENE_ORDERS = ['most_reused', 'recent', 'size'] as const;
/**
 * - `most_reused`: `download_count` (jobs served from the cache) descending;
 * - `recent`: last used (served from the cache, or else first cached) descending;
 * - `size`: `total_bytes` descending.
 * Ties are broken by `scene_id`.
 */
export type CachedSceneOrder = (typeof CACHED_SCENE_ORDERS)[number];

/** Most rows {@link listCachedScenes} returns. */
export const MAX_SCENE_LIST_LIMIT = 100;
/** Rows {@link listCachedScenes} returns when no limit is given. */
export const DEFAULT_SCENE_LIST_LIMIT = 20;

/** Query of {@link listCachedScenes}. */
export interface CachedScenesQuery {
  /** @defaultValue `most_reused` */
  order?: CachedSceneOrder | undefined;
  /** 1…{@link MAX_SCENE_LIST_LIMIT}. @defaultValue {@link DEFAULT_SCENE_LIST_LIMIT} */
  limit?: number | undefined;
  /** Only this product level. */
  level?: ProductLevel | undefined;
  /** Only this MGRS tile, e.g. `32TNS` (no leading `T`). */
  tile?: string | undefined;
}

/** A cached scene as dashboards list it. */
export interface CachedSceneSummary {
  /** Product name without `.SAFE`. */
  scene_id: string;
  level: ProductLevel;
  /** MGRS tile, e.g. `32TNS`. */
  tile: string;
  /** `YYYY-MM-DD` (UTC). */
  sensing_date: string;
  /** Band ids held in the global bucket, sorted. */
  bands: string[];
  /** Sum of the cached bands' sizes (bytes). */
  total_bytes: number;
  /** Jobs served from the cache for this scene (the seed's reuse counter). */
  download_count: number;
  /** Last time a job was served from the cache; `null` when never. */
  last_accessed_at: Date | null;
  /** `false` once invalidated (the next job downloads again). */
  is_valid: boolean;
  /** When the scene was first cached. */
  created_at: Date;
}

/**
 * Cached scenes of `global_scene_cache` (valid and invalidated), in the given order.
 *
 * @throws ValidationError `invalid_payload` (field `limit` or `order`) for a value out of range.
 */
export async function listCachedScenes(db: Queryable, query: CachedScenesQuery = {}): Promise<CachedSceneSummary[]> {
  const limit = query.limit ?? DEFAULT_SCENE_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SCENE_LIST_LIMIT) {
    throw new ValidationError('invalid_payload', `limit must be an integer from 1 to ${MAX_SCENE_LIST_LIMIT}`, 'limit');
  }
  const order = query.order ?? 'most_reused';
  if (!CACHED_SCENE_ORDERS.includes(order)) {
    throw new ValidationError('invalid_payload', `order must be one of ${CACHED_SCENE_ORDERS.join(', ')}`, 'order');
  }

  let select = db
    .selectFrom('global_scene_cache')
    .select([
      'scene_id',
      'product_level',
      'tile',
      'sensing_date',
      'total_bytes',
      'download_count',
      'last_accessed_at',
      'is_valid',
      'created_at',
      sql<string[]>`ARRAY(SELECT jsonb_object_keys(bands) ORDER BY 1)`.as('band_ids'),
    ]);
  if (query.level !== undefined) select = select.where('product_level', '=', query.level);
  if (query.tile !== undefined) select = select.where('tile', '=', query.tile);
  if (order === 'most_reused') {
    select = select.orderBy('download_count', 'desc').orderBy('last_accessed_at', (ob) => ob.desc().nullsLast());
  } else if (order === 'recent') {
    // GREATEST ignores NULLs: a scene never reused counts from when it was cached.
    select = select.orderBy(sql`GREATEST(last_accessed_at, created_at)`, 'desc');
  } else {
    select = select.orderBy('total_bytes', 'desc');
  }
  const rows = await select.orderBy('scene_id').limit(limit).execute();
  return rows.map((row) => ({
    scene_id: row.scene_id,
    level: row.product_level as ProductLevel,
    tile: row.tile,
    sensing_date: row.sensing_date,
    bands: row.band_ids,
    total_bytes: row.total_bytes,
    download_count: row.download_count,
    last_accessed_at: row.last_accessed_at,
    is_valid: row.is_valid,
    created_at: row.created_at,
  }));
}
