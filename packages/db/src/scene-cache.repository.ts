/**
 * `global_scene_cache`: one row per scene (product), describing the bands held in the global
 * bucket. Only bands listed in `bands` of a row with `is_valid = true` may be served from the cache.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Queryable } from './database.js';
import type { CachedBand, SceneCacheRow } from './schema.js';

/** Product level, as in the product name (`MSIL1C` → `L1C`). */
export type ProductLevel = 'L1C' | 'L2A';

/** Input of {@link registerBands}. */
export interface RegisterBandsInput {
  /** Product name without `.SAFE`. */
  sceneId: string;
  /** The global bucket. */
  storageBucket: string;
  /** Key prefix of the scene's objects in the global bucket. */
  storagePath: string;
  /** Sensing day, `YYYY-MM-DD` (UTC). */
  sensingDate: string;
  level: ProductLevel;
  /** MGRS tile, e.g. `32TNS`. */
  tile: string;
  /** `S2A`, `S2B`, `S2C`. */
  mission: string;
  /** CDSE OData product Id; `null` keeps the one already stored. */
  cdseProductId: string | null;
  /** Cloud cover (%), when known; omitted or `null` keeps the one already stored. */
  cloudCoverage?: number | null;
  /** The bands just uploaded and verified, band id (`B04`) → entry. */
  bands: Record<string, CachedBand>;
}

/** Sum of the `size` fields of a bands jsonb expression (bytes). */
function totalBytesOf(bands: RawBuilder<string>): RawBuilder<number> {
  return sql<number>`(SELECT COALESCE(SUM((entry.value ->> 'size')::bigint), 0) FROM jsonb_each(${bands}) AS entry)`;
}

/** The scene's cache row, valid or not; `undefined` when the scene was never cached. */
export async function findScene(db: Queryable, sceneId: string): Promise<SceneCacheRow | undefined> {
  return db.selectFrom('global_scene_cache').selectAll().where('scene_id', '=', sceneId).executeTakeFirst();
}

/**
 * Record freshly downloaded bands, in one statement: insert the scene's row, or merge the bands into
 * the existing row (a band id present in both is overwritten). `total_bytes` is recomputed from the
 * merged bands, `is_valid` set to `true`, `updated_at` to now.
 *
 * When the existing row was invalidated (`is_valid = false`), its bands are replaced, not merged:
 * an invalidated scene's objects are not trusted any more, so only what was just verified counts.
 * `download_count` and `last_accessed_at` are kept either way. (The worker registers through the
 * global cache, which refuses an invalidated row instead: @scenecache/global-cache.)
 *
 * Call it only after every object in `bands` is whole in the global bucket.
 *
 * @returns the row after the write.
 */
export async function registerBands(db: Queryable, input: RegisterBandsInput): Promise<SceneCacheRow> {
  const totalBytes = Object.values(input.bands).reduce((sum, band) => sum + band.size, 0);
  // `excluded` is the row we tried to insert; the CASE implements "replace after invalidation".
  const merged = sql<string>`(CASE WHEN global_scene_cache.is_valid THEN global_scene_cache.bands || excluded.bands ELSE excluded.bands END)`;
  return db
    .insertInto('global_scene_cache')
    .values({
      scene_id: input.sceneId,
      storage_bucket: input.storageBucket,
      storage_path: input.storagePath,
      sensing_date: input.sensingDate,
      product_level: input.level,
      tile: input.tile,
      mission: input.mission,
      cdse_product_id: input.cdseProductId,
      cloud_coverage: input.cloudCoverage ?? null,
      bands: JSON.stringify(input.bands),
      total_bytes: totalBytes,
    })
    .onConflict((oc) =>
      oc.column('scene_id').doUpdateSet((eb) => ({
        bands: merged,
        total_bytes: totalBytesOf(merged),
        is_valid: true,
        storage_bucket: eb.ref('excluded.storage_bucket'),
        storage_path: eb.ref('excluded.storage_path'),
        cdse_product_id: eb.fn.coalesce('excluded.cdse_product_id', 'global_scene_cache.cdse_product_id'),
        cloud_coverage: eb.fn.coalesce('excluded.cloud_coverage', 'global_scene_cache.cloud_coverage'),
        updated_at: sql`now()`,
      })),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Delete band entries from the scene's row (objects found missing or truncated), recomputing
 * `total_bytes` and setting `updated_at`. The row stays valid: its other bands are still good.
 * Unknown band ids are ignored.
 *
 * @returns the row after the write; `undefined` when the scene has no row.
 */
export async function deleteBandEntries(db: Queryable, sceneId: string, bandIds: readonly string[]): Promise<SceneCacheRow | undefined> {
  // SET expressions all see the old row, so both compute from the same remaining bands.
  const remaining = sql<string>`(global_scene_cache.bands - ${[...bandIds]}::text[])`;
  return db
    .updateTable('global_scene_cache')
    .set({ bands: remaining, total_bytes: totalBytesOf(remaining), updated_at: sql`now()` })
    .where('scene_id', '=', sceneId)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Count one job served from the cache: `download_count + 1`, `last_accessed_at = now()`.
 * `updated_at` is left alone: it dates changes to the cached content (cleanup ages invalid rows by it).
 *
 * @returns the new `download_count`; `undefined` when the scene has no row.
 */
export async function recordCacheHit(db: Queryable, sceneId: string): Promise<number | undefined> {
  const row = await db
    .updateTable('global_scene_cache')
    .set((eb) => ({ download_count: eb('download_count', '+', 1), last_accessed_at: sql`now()` }))
    .where('scene_id', '=', sceneId)
    .returning('download_count')
    .executeTakeFirst();
  return row?.download_count;
}
