/**
 * Cache administration: invalidate scenes (whole rows, or some bands), clean up invalid rows and
 * their objects in the global bucket. The table and the bucket are changed in the order that
 * keeps "no object the table describes wrongly" true for the worker (see cache-admin.repository.ts
 * for how the worker reads invalid rows).
 *
 * What is guaranteed while jobs run (no operation here waits for a download):
 *
 * - Whole-scene invalidation sets `is_valid = false` without the scene lock. Every job that reads
 *   the cache after it committed downloads again (`cache_status: downloaded`) and does not adopt
 *   the old objects. A job already past its cache read finishes with what it read: a job copying
 *   cached bands to its tenant completes as `reused`; a job downloading under the scene lock
 *   registers its freshly verified bands afterwards, which makes the row valid again with exactly
 *   those bands (the invalidated ones are dropped from the row; see the README for the one gap).
 * - Band invalidation deletes the bands' objects first, then drops their entries from the row —
 *   only entries still equal to what was read, so a band re-registered meanwhile by a download
 *   (fresh bytes) is kept. A job copying exactly those bands at that moment fails that attempt
 *   (`storage_error`, retried) and downloads them on the retry; a job that finds an object gone
 *   drops the entry itself and downloads it. Objects are deleted before the row changes because
 *   an object left at its key with its verified checksum would be adopted, not downloaded again.
 * - Cleanup takes the scene's advisory lock per scene (transaction level, try only): a scene
 *   being downloaded right now is skipped (`skipped`), never cleaned under a download. Under the
 *   lock it deletes the row if still invalid and old enough, then every object under the scene's
 *   prefix in its bucket (the row's bands and leftovers nothing describes any more), and commits.
 */
import type { Kysely } from 'kysely';
import { ScenecacheError, ValidationError, type Logger } from '@scenecache/core';
import {
  deleteInvalidEntry,
  findBandInvalidationTargets,
  findInvalidEntries,
  invalidateSceneEntries,
  removeBandEntries,
  tryLockSceneForTransaction,
  type DB,
  type InvalidEntry,
  type SceneSelector,
} from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';
import { callDependency } from './dependency-call.js';

/** The logging the service does; a request's logger (bound to its request id) fits. */
export type AdminLogger = Pick<Logger, 'info'>;

/** S3 requests in flight per operation. */
const S3_CONCURRENCY = 8;

/** Options of {@link CacheAdminService}. */
export interface CacheAdminOptions {
  db: Kysely<DB>;
  /** The global bucket's store; without it, band invalidation and cleanup answer 503 (dry runs work). */
  store: ObjectStore | undefined;
  /** Deadline of each single Postgres statement (ms); transactions spanning S3 calls have none. */
  postgresMs: number;
  /** Most scene ids a reply lists. */
  listCap: number;
  /** Most scenes one band invalidation may touch. */
  maxBandInvalidationScenes: number;
}

/** An invalidation request, validated. */
export interface InvalidationRequest {
  selector: SceneSelector;
  /** Canonical band ids; `undefined`: whole scenes. */
  bands: readonly string[] | undefined;
  dryRun: boolean;
}

/** What an invalidation did (or would do). */
export interface InvalidationResult {
  /** Scenes invalidated. */
  count: number;
  /** Bytes of cached content invalidated. */
  bytes: number;
  /** Scene ids, sorted, capped at `listCap`. */
  sceneIds: string[];
}

/** A cleanup request, validated. */
export interface CleanupRequest {
  olderThanDays: number;
  limit: number;
  dryRun: boolean;
}

/** What a cleanup did (or would do). */
export interface CleanupResult {
  /** Scene ids deleted (oldest invalidation first), all of them. */
  deleted: string[];
  /** Bytes removed from the bucket (dry run: described by the rows). */
  bytesFreed: number;
  objectsDeleted: number;
  /** Scenes skipped because a job held the scene lock. */
  skipped: string[];
  /** More rows qualify than the limit allowed. */
  more: boolean;
}

/** Run `fn` over `items` with at most `limit` calls in flight; rejects with the first error. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** The admin operations on the global cache. */
export class CacheAdminService {
  private readonly options: CacheAdminOptions;

  constructor(options: CacheAdminOptions) {
    this.options = options;
  }

  private postgres<T>(call: () => Promise<T>): Promise<T> {
    return callDependency('Postgres', this.options.postgresMs, call);
  }

  /** @throws ScenecacheError `service_unavailable` (503) when the API has no object store. */
  private requireStore(what: string): ObjectStore {
    if (this.options.store) return this.options.store;
    throw new ScenecacheError('service_unavailable', `${what} deletes objects in the global bucket, and this API runs without an S3 client`, { httpStatus: 503 });
  }

  /**
   * Invalidate the selected scenes, or only the given bands of them. Scenes not cached, already
   * invalid, or not holding any of the bands are left alone (not counted): repeating a request
   * changes nothing.
   *
   * @throws ValidationError `invalid_payload` (field `pattern`/`scene_id`) when a band
   *   invalidation matches more than `maxBandInvalidationScenes` scenes; ScenecacheError
   *   `service_unavailable` (no store), `storage_error` (S3 failed: the rows of scenes whose
   *   objects were not all deleted are left unchanged; repeat the request).
   */
  async invalidate(request: InvalidationRequest, log: AdminLogger): Promise<InvalidationResult> {
    const { db, listCap } = this.options;
    if (request.bands === undefined) {
      const affected = await this.postgres(() => invalidateSceneEntries(db, request.selector, { dryRun: request.dryRun, listCap }));
      if (!request.dryRun && affected.count > 0) log.info({ scenes: affected.count, bytes: affected.bytes }, 'cache entries invalidated');
      return affected;
    }
    const bands = request.bands;
    const max = this.options.maxBandInvalidationScenes;
    const targets = await this.postgres(() => findBandInvalidationTargets(db, request.selector, bands, max + 1));
    if (targets.length > max) {
      const field = 'pattern' in request.selector ? 'pattern' : 'scene_id';
      throw new ValidationError('invalid_payload', `more than ${max} cached scenes hold these bands: narrow the pattern, or invalidate whole scenes (without bands)`, field);
    }
    const bytesOf = (entries: Record<string, { size: number }>) => Object.values(entries).reduce((sum, b) => sum + b.size, 0);
    if (request.dryRun) {
      return { count: targets.length, bytes: targets.reduce((sum, t) => sum + bytesOf(t.bands), 0), sceneIds: targets.map((t) => t.sceneId).slice(0, listCap) };
    }
    const store = this.requireStore('band invalidation');
    // Scene by scene: objects first (an object left at its key would be adopted), then the row.
    const removed = await mapBounded(targets, Math.max(1, Math.floor(S3_CONCURRENCY / 2)), async (target) => {
      await Promise.all(Object.values(target.bands).map((band) => store.deleteObject(target.storageBucket, band.key)));
      const ids = await this.postgres(() => removeBandEntries(db, target.sceneId, target.bands));
      return { sceneId: target.sceneId, bytes: ids.reduce((sum, id) => sum + (target.bands[id]?.size ?? 0), 0), removed: ids.length };
    });
    const changed = removed.filter((r) => r.removed > 0);
    const result = { count: changed.length, bytes: changed.reduce((sum, r) => sum + r.bytes, 0), sceneIds: changed.map((r) => r.sceneId).slice(0, listCap) };
    if (result.count > 0) log.info({ scenes: result.count, bands, bytes: result.bytes }, 'cached bands invalidated');
    return result;
  }

  /**
   * Delete invalid rows older than `olderThanDays` (oldest first, at most `limit`) and every
   * object under their scenes' prefixes in the global bucket.
   *
   * @throws ScenecacheError `service_unavailable` (no store), `storage_error` (S3 failed: that
   *   scene's row is kept, to be cleaned by the next run; scenes cleaned before stay cleaned).
   */
  async cleanup(request: CleanupRequest, log: AdminLogger): Promise<CleanupResult> {
    const { db } = this.options;
    const { entries, more } = await this.postgres(() => findInvalidEntries(db, { olderThanDays: request.olderThanDays, limit: request.limit }));
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
    // One scene at a time: each holds a pooled connection (and the scene lock) while its objects go.
    for (const entry of entries) {
      const outcome = await db.transaction().execute(async (trx) => {
        if (!(await tryLockSceneForTransaction(trx, entry.sceneId))) return 'busy' as const;
        const row = await deleteInvalidEntry(trx, entry.sceneId, request.olderThanDays);
        if (!row) return 'gone' as const;
        return this.deleteSceneObjects(store, row);
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

  /**
   * Delete every object of a deleted row: its bands' keys and whatever else is under
   * `<storage_path>/` (objects a job dropped from the row, e.g. truncated ones). Sizes from HEAD.
   */
  private async deleteSceneObjects(store: ObjectStore, row: InvalidEntry): Promise<{ bytes: number; objects: number }> {
    const listed = await store.listKeys(row.storageBucket, `${row.storagePath}/`);
    const keys = [...new Set([...listed, ...Object.values(row.bands).map((b) => b.key)])];
    const sizes = await mapBounded(keys, S3_CONCURRENCY, async (key) => {
      const head = await store.headObject(row.storageBucket, key);
      if (!head) return undefined;
      await store.deleteObject(row.storageBucket, key);
      return head.size;
    });
    const deleted = sizes.filter((s): s is number => s !== undefined);
    return { bytes: deleted.reduce((sum, s) => sum + s, 0), objects: deleted.length };
  }
}
