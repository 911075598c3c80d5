/**
 * The admin side of the global cache (the admin API's `/v1/admin/cache/invalidate` and `/cleanup`):
 * invalidate products (whole rows, or some bands) and clean up invalid rows with every object under
 * their prefix. It changes the table and the bucket in the order that keeps the rules of
 * global-cache.ts true while jobs run; no operation here waits for a download.
 *
 * - **Whole products** are invalidated in the table only (`is_valid = false`, the seed's SQL), without
 *   the scene lock; the objects stay. An invalidated row serves nothing: the next job for the
 *   product resets it first (`GlobalCache.resetInvalidated`, which deletes the objects the row
 *   describes and empties the row) and downloads its bands again (`cache_status: downloaded`).
 *   A job already past its cache read finishes with what it read: a job copying cached bands to
 *   its tenant completes as `reused` (or, when another job reset the product under it, fails that
 *   attempt with `storage_error` and is served afresh on the retry); a job streaming bands of the
 *   product stores them, has their registration refused, and runs again (no attempt spent) — its
 *   next run resets the product and adopts its own verified uploads.
 * - **Bands** are invalidated objects first, then table: their objects are deleted, then their
 *   entries dropped from the row — only entries still equal to what was read, so a band registered
 *   again meanwhile (fresh bytes) is kept. Objects go first because an object left at its key with
 *   its verified checksum would be adopted, not downloaded again. A job copying exactly those bands
 *   at that moment fails that attempt (`storage_error`, retried) and downloads them on the retry; a
 *   job that finds an object gone drops the entry itself and downloads it.
 * - **Cleanup** takes each product's scene lock at transaction level, try only
 *   (`tryLockSceneForTransaction`, which conflicts with a downloading job's shared session lock):
 *   a product being downloaded right now is skipped, never cleaned under a download. Under the
 *   lock it deletes the row if still invalid and old enough, then every object under the product's
 *   prefix in its bucket (the row's bands and leftovers nothing describes any more), and commits.
 *
 * Tenant copies are never touched.
 */
import type { Kysely } from 'kysely';
import pLimit from 'p-limit';
import { ValidationError, type Logger } from '@scenecache/core';
import {
  deleteInvalidEntry,
  findBandInvalidationTargets,
  findInvalidEntries,
  invalidateSceneEntries,
  removeBandEntries,
  tryLockSceneForTransaction,
  type AffectedScenes,
  type DB,
  type InvalidEntry,
  type SceneSelector,
} from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';
import { productObjectKeys } from './global-cache.js';

/** S3 requests in flight per operation (band invalidation: half of it, as scenes at a time). */
const S3_CONCURRENCY = 8;

/** The admin operations that delete objects, and so need an object store (dry runs do not). */
export type ObjectDeletingOperation = 'band invalidation' | 'cleanup';

/** Options of {@link GlobalCacheAdmin}. */
export interface GlobalCacheAdminOptions {
  db: Kysely<DB>;
  /**
   * The store of the global bucket. `undefined`: the process has no S3 client; whole-product
   * invalidation and dry runs still work, band invalidation and cleanup throw `missingStoreError`.
   */
  store: ObjectStore | undefined;
  /** Most scene ids an invalidation result lists. */
  listCap: number;
  /** Most products one band invalidation may touch. */
  maxBandInvalidationScenes: number;
  /**
   * Runs each single Postgres statement (not the cleanup's per-product transactions, which span S3
   * calls), e.g. under a deadline. @defaultValue runs it as it is
   */
  runPostgresStatement?: <T>(statement: () => Promise<T>) => Promise<T>;
  /**
   * The error thrown when an operation must delete objects and there is no store, after the table
   * was read and before anything changed. @defaultValue a plain `Error`
   */
  missingStoreError?: (operation: ObjectDeletingOperation) => Error;
}

/** An invalidation request, validated. */
export interface InvalidationRequest {
  selector: SceneSelector;
  /** Canonical band ids; `undefined`: whole products. */
  bands: readonly string[] | undefined;
  dryRun: boolean;
}

/** A cleanup request, validated. */
export interface CleanupRequest {
  /** Invalid rows whose `updated_at` (the invalidation) is more than this many days ago; 0: all. */
  olderThanDays: number;
  /** Most rows one request cleans. */
  limit: number;
  dryRun: boolean;
}

/** What a cleanup did (or would do). */
export interface CleanupResult {
  /** Scene ids deleted (oldest invalidation first), all of them. */
  deleted: string[];
  /** Bytes removed from the bucket (HEAD sizes; dry run: the bytes the rows describe). */
  bytesFreed: number;
  /** Objects deleted (dry run: the band objects the rows describe). */
  objectsDeleted: number;
  /** Scenes skipped because a job held the scene lock. */
  skipped: string[];
  /** More rows qualify than the limit allowed. */
  more: boolean;
}

/** The global cache's admin operations of one process (the API's). */
export class GlobalCacheAdmin {
  private readonly options: GlobalCacheAdminOptions;
  private readonly runPostgresStatement: <T>(statement: () => Promise<T>) => Promise<T>;

  constructor(options: GlobalCacheAdminOptions) {
    this.options = options;
    this.runPostgresStatement = options.runPostgresStatement ?? ((statement) => statement());
  }

  /**
   * Invalidate the selected products, or only the given bands of them (see the module's doc for
   * the order of table and bucket). Products not cached, already invalid, or not holding any of
   * the bands are left alone (not counted): repeating a request changes nothing.
   *
   * @param log - info lines about what changed (a request's logger fits).
   * @returns products invalidated (whole: rows set invalid; bands: rows that lost at least one),
   *   bytes of cached content invalidated, and their scene ids, sorted, at most `listCap`.
   * @throws ValidationError `invalid_payload` (field `pattern` or `scene_id`) when a band
   *   invalidation matches more than `maxBandInvalidationScenes` products; `missingStoreError`
   *   (band invalidation without a store); ScenecacheError `storage_error` when S3 fails (the rows
   *   of products whose objects were not all deleted are left unchanged: repeat the request);
   *   what `runPostgresStatement` throws, or pg errors.
   */
  async invalidate(request: InvalidationRequest, log: Pick<Logger, 'info'>): Promise<AffectedScenes> {
    const { db, listCap } = this.options;
    if (request.bands === undefined) {
      const affected = await this.runPostgresStatement(() => invalidateSceneEntries(db, request.selector, { dryRun: request.dryRun, listCap }));
      if (!request.dryRun && affected.count > 0) log.info({ scenes: affected.count, bytes: affected.bytes }, 'cache entries invalidated');
      return affected;
    }
    const bands = request.bands;
    const max = this.options.maxBandInvalidationScenes;
    const targets = await this.runPostgresStatement(() => findBandInvalidationTargets(db, request.selector, bands, max + 1));
    if (targets.length > max) {
      const field = 'pattern' in request.selector ? 'pattern' : 'scene_id';
      throw new ValidationError('invalid_payload', `more than ${max} cached scenes hold these bands: narrow the pattern, or invalidate whole scenes (without bands)`, field);
    }
    const bytesOf = (entries: Record<string, { size: number }>) => Object.values(entries).reduce((sum, b) => sum + b.size, 0);
    if (request.dryRun) {
      return { count: targets.length, bytes: targets.reduce((sum, t) => sum + bytesOf(t.bands), 0), sceneIds: targets.map((t) => t.sceneId).slice(0, listCap) };
    }
    const store = this.requireStore('band invalidation');
    // Product by product: objects first (an object left at its key would be adopted), then the row.
    const limit = pLimit(Math.max(1, Math.floor(S3_CONCURRENCY / 2)));
    const removed = await Promise.all(
      targets.map((target) =>
        limit(async () => {
          await Promise.all(Object.values(target.bands).map((band) => store.deleteObject(target.storageBucket, band.key)));
          const ids = await this.runPostgresStatement(() => removeBandEntries(db, target.sceneId, target.bands));
          return { sceneId: target.sceneId, bytes: ids.reduce((sum, id) => sum + (target.bands[id]?.size ?? 0), 0), removed: ids.length };
        }),
      ),
    );
    const changed = removed.filter((r) => r.removed > 0);
    const result = { count: changed.length, bytes: changed.reduce((sum, r) => sum + r.bytes, 0), sceneIds: changed.map((r) => r.sceneId).slice(0, listCap) };
    if (result.count > 0) log.info({ scenes: result.count, bands, bytes: result.bytes }, 'cached bands invalidated');
    return result;
  }

  /**
   * Delete invalid rows older than `olderThanDays` (oldest first, at most `limit`) and every
   * object under their products' prefixes, one product at a time under its scene lock (see the
   * module's doc); a product whose lock a job holds is skipped. A dry run reads the table only.
   *
   * @param log - info lines about what changed (a request's logger fits).
   * @throws `missingStoreError` (no store, not a dry run); ScenecacheError `storage_error` when S3
   *   fails (that product's row is kept, to be cleaned by the next run; products cleaned before
   *   stay cleaned); what `runPostgresStatement` throws, or pg errors.
   */
  async cleanup(request: CleanupRequest, log: Pick<Logger, 'info'>): Promise<CleanupResult> {
    const { db } = this.options;
    const { entries, more } = await this.runPostgresStatement(() => findInvalidEntries(db, { olderThanDays: request.olderThanDays, limit: request.limit }));
    if (request.dryRun) {
      return {
        deleted: entries.map((e) => e.sceneId),
        bytesFreed: entries.reduce((sum, e) => sum + e.totalBytes, 0),
        objectsDeleted: entries.reduce((sum, e) => sum + Object.keys(e.bands).length, 0),
        skipped: [],
        more,
      };
    }
    const store = this.requireStore('cleanup');
    const result: CleanupResult = { deleted: [], bytesFreed: 0, objectsDeleted: 0, skipped: [], more };
    // One product at a time: each holds a pooled connection (and the scene lock) while its objects go.
    for (const entry of entries) {
      const outcome = await db.transaction().execute(async (trx) => {
        if (!(await tryLockSceneForTransaction(trx, entry.sceneId))) return 'busy' as const;
        const row = await deleteInvalidEntry(trx, entry.sceneId, request.olderThanDays);
        if (!row) return 'gone' as const;
        return deleteProductObjects(store, row);
      });
      if (outcome === 'busy') result.skipped.push(entry.sceneId);
      else if (outcome !== 'gone') {
        result.deleted.push(entry.sceneId);
        result.bytesFreed += outcome.bytes;
        result.objectsDeleted += outcome.objects;
      }
    }
    if (result.deleted.length > 0 || result.skipped.length > 0) {
      log.info({ deleted: result.deleted.length, bytesFreed: result.bytesFreed, objectsDeleted: result.objectsDeleted, skipped: result.skipped.length }, 'invalid cache entries cleaned up');
    }
    return result;
  }

  /** @throws `missingStoreError(operation)` when there is no store. */
  private requireStore(operation: ObjectDeletingOperation): ObjectStore {
    if (this.options.store) return this.options.store;
    throw this.options.missingStoreError?.(operation) ?? new Error(`${operation} deletes objects in the global bucket, and no object store was given`);
  }
}

/**
 * Delete every object of a deleted row: its bands' keys and whatever else is under its prefix
 * ({@link productObjectKeys}: objects a job dropped from the row, e.g. truncated ones), at most
 * {@link S3_CONCURRENCY} requests at once.
 *
 * @returns bytes deleted (sizes from HEAD) and objects deleted (keys already gone are not counted).
 * @throws ScenecacheError `storage_error` when S3 fails.
 */
async function deleteProductObjects(store: ObjectStore, row: InvalidEntry): Promise<{ bytes: number; objects: number }> {
  const keys = await productObjectKeys(store, { storage_bucket: row.storageBucket, storage_path: row.storagePath, bands: row.bands });
  const limit = pLimit(S3_CONCURRENCY);
  const sizes = await Promise.all(
    keys.map((key) =>
      limit(async () => {
        const head = await store.headObject(row.storageBucket, key);
        if (!head) return undefined;
        await store.deleteObject(row.storageBucket, key);
        return head.size;
      }),
    ),
  );
  const deleted = sizes.filter((s): s is number => s !== undefined);
  return { bytes: deleted.reduce((sum, s) => sum + s, 0), objects: deleted.length };
}
