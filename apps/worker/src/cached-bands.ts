/**
 * Step 2 of the pipeline: which requested bands the global cache can serve. A band counts only if
 * its row is valid and its object is really there with the registered size (HEAD): an object
 * deleted or truncated behind our back is reported invalid, so the caller drops it from the cache
 * and downloads it again.
 */
import type { Band } from '@scenecache/core';
import type { CachedBand, SceneCacheRow } from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';

/** The cache's answer for a job's bands. */
export interface CacheCheck {
  /** Bands the cache serves, by band id. */
  readonly cached: ReadonlyMap<string, CachedBand>;
  /** Bands to fetch from upstream, in request order. */
  readonly missing: readonly Band[];
  /** Registered bands whose object is missing or has the wrong size (ids). */
  readonly invalid: readonly string[];
  /**
   * Keys of the objects of an invalidated row (`is_valid = false`): not to be adopted as left-over
   * uploads, and not to be left in the bucket once the scene is registered again.
   */
  readonly untrustedKeys: readonly string[];
}

/**
 * HEAD every registered band of `bands` in the global bucket.
 * @throws ScenecacheError `storage_error` when S3 fails (not when an object is absent).
 */
export async function checkCachedBands(
  store: ObjectStore,
  row: SceneCacheRow | undefined,
  bands: readonly Band[],
): Promise<CacheCheck> {
  const cached = new Map<string, CachedBand>();
  const missing: Band[] = [];
  const invalid: string[] = [];
  await Promise.all(
    bands.map(async (band) => {
      const entry = row?.is_valid ? row.bands[band.id] : undefined;
      if (!entry) return;
      const head = await store.headObject(row!.storage_bucket, entry.key);
      if (head && head.size === entry.size) cached.set(band.id, entry);
      else invalid.push(band.id);
    }),
  );
  for (const band of bands) if (!cached.has(band.id)) missing.push(band);
  const untrustedKeys = row && !row.is_valid ? Object.values(row.bands).map((b) => b.key) : [];
  return { cached, missing, invalid, untrustedKeys };
}
