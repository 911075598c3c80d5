/**
 * `/v1/admin`: cache administration, admin keys only (a tenant key gets 403 before its request is
 * validated; no key, 401, from the auth hook). Invalidate scenes or bands, clean up invalid
 * entries and their objects, list entries. The operations and their guarantees while jobs run are
 * @scenecache/global-cache's (`GlobalCacheAdmin`, global-cache-admin.ts); these routes add what is
 * HTTP's: request validation, a deadline on each Postgres statement, 503 when the API runs without
 * an S3 client and the operation deletes objects, logging through the request's logger.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { ScenecacheError } from '@scenecache/core';
import { listCacheEntries, type DB, type ProductLevel, type SceneCacheRow } from '@scenecache/db';
import { GlobalCacheAdmin } from '@scenecache/global-cache';
import type { ObjectStore } from '@scenecache/storage';
import { requireAdmin } from '../auth.js';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts } from '../download-enqueue.js';
import { errorReplySchema } from '../error-handler.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import {
  ADMIN_SCENE_LIST_CAP,
  cacheEntriesQuerySchema,
  cacheEntryPageSchema,
  cleanupBodySchema,
  cleanupReplySchema,
  invalidateBodySchema,
  invalidateReplySchema,
  MAX_BAND_INVALIDATION_SCENES,
  toInvalidationInput,
  type CacheEntryPageView,
  type CleanupReply,
  type InvalidateReply,
} from './admin.schemas.js';

/** Options of {@link adminRoutes}. */
export interface AdminRoutesOptions {
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
  /**
   * The global bucket's object store. Band invalidation and cleanup delete objects with it and
   * answer 503 without it (dry runs, whole-scene invalidation and listing do not need it).
   */
  store?: ObjectStore | undefined;
}

const errors = { 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 503: errorReplySchema };
const bodyErrors = { ...errors, 413: errorReplySchema, 415: errorReplySchema };

/** A cache row as `GET /v1/admin/cache/entries` lists it. */
function toCacheEntryView(row: SceneCacheRow): CacheEntryPageView['items'][number] {
  return {
    scene_id: row.scene_id,
    level: row.product_level as ProductLevel,
    tile: row.tile,
    mission: row.mission,
    sensing_date: row.sensing_date,
    bands: row.bands,
    total_bytes: Number(row.total_bytes),
    download_count: row.download_count,
    last_accessed_at: row.last_accessed_at?.toISOString() ?? null,
    is_valid: row.is_valid,
    storage_bucket: row.storage_bucket,
    storage_path: row.storage_path,
    cdse_product_id: row.cdse_product_id,
    cloud_coverage: row.cloud_coverage,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** The admin routes (registered under `/v1`). */
export const adminRoutes: FastifyPluginCallback<AdminRoutesOptions> = (fastify, { db, timeouts, store }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);
  const cacheAdmin = new GlobalCacheAdmin({
    db,
    store,
    listCap: ADMIN_SCENE_LIST_CAP,
    maxBandInvalidationScenes: MAX_BAND_INVALIDATION_SCENES,
    runPostgresStatement: postgres,
    missingStoreError: (operation) =>
      new ScenecacheError('service_unavailable', `${operation} deletes objects in the global bucket, and this API runs without an S3 client`, { httpStatus: 503 }),
  });

  // After the `/v1` auth hook (parent hooks run first), before the body is parsed and validated:
  // a tenant key learns nothing about admin request shapes.
  app.addHook('onRequest', (request, _reply, next) => {
    try {
      requireAdmin(request);
    } catch (err) {
      next(err as Error);
      return;
    }
    next();
  });

  app.post(
    '/admin/cache/invalidate',
    {
      schema: {
        operationId: 'invalidateCache', summary: 'Invalidate cached scenes (by id or name pattern), or some of their bands',
        description:
          'Exactly one of `scene_id` (a product name, with or without .SAFE) or `pattern` (a glob on the product name: `*` any characters, `?` one character, the rest literal; a pattern without a literal character needs `all: true`). ' +
          'Without `bands`, matching valid rows are marked invalid (`is_valid = false`, as the seed\'s SQL): the next job for such a scene downloads every band it asks for again (`cache_status: downloaded`); the old objects stay until that job deletes them before downloading (it resets the product) or the cleanup removes them. ' +
          'With `bands`, only those bands are dropped from matching valid rows and their objects are deleted from the global bucket at once (needs S3; at most 1000 scenes per request); the next job asking for them downloads them again, the other bands stay cached. ' +
          'Idempotent: scenes not cached, already invalid, or not holding the bands are not counted (200 with `invalidated: 0`). `dry_run: true` reports without changing anything. No scene lock is taken: when a scene is invalidated while a job downloads some of its bands, the job finishes storing them, their registration is refused, and the job runs again (no attempt spent): it resets the product and registers the bands it stored without downloading them twice. `scenes` lists at most 1000 ids (`scenes_truncated`).',
        tags: ['admin'],
        body: invalidateBodySchema,
        response: { 200: invalidateReplySchema, ...bodyErrors },
      },
    },
    async (request): Promise<InvalidateReply> => {
      const input = toInvalidationInput(request.body);
      const result = await cacheAdmin.invalidate(input, request.log);
      return {
        dry_run: input.dryRun,
        invalidated: result.count,
        bytes: result.bytes,
        ...(input.bands === undefined ? {} : { bands: input.bands }),
        scenes: result.sceneIds,
        scenes_truncated: result.sceneIds.length < result.count,
      };
    },
  );

  app.post(
    '/admin/cache/cleanup',
    {
      schema: {
        operationId: 'cleanUpCache', summary: 'Delete invalid cache entries older than N days, and their objects in the global bucket',
        description:
          'Deletes rows with `is_valid = false` whose `updated_at` (the invalidation time) is more than `older_than_days` days ago, oldest first, at most `limit` per request (`more: true`: run it again), and every object under each scene\'s prefix in the global bucket (tenant copies are never touched). ' +
          'A scene a job is downloading right now (its advisory lock is held) is skipped and listed in `skipped`. Valid rows are never deleted. ' +
          '`dry_run: true` lists what would go, with the bytes and band objects the rows describe, without S3. Needs S3 otherwise (503 without it).',
        tags: ['admin'],
        body: cleanupBodySchema,
        response: { 200: cleanupReplySchema, ...bodyErrors },
      },
    },
    async (request): Promise<CleanupReply> => {
      const body = request.body;
      const result = await cacheAdmin.cleanup({ olderThanDays: body.older_than_days, limit: body.limit, dryRun: body.dry_run }, request.log);
      return {
        dry_run: body.dry_run,
        deleted: result.deleted.length,
        bytes_freed: result.bytesFreed,
        objects_deleted: result.objectsDeleted,
        scenes: result.deleted.slice(0, ADMIN_SCENE_LIST_CAP),
        scenes_truncated: result.deleted.length > ADMIN_SCENE_LIST_CAP,
        skipped: result.skipped,
        more: result.more,
      };
    },
  );

  app.get(
    '/admin/cache/entries',
    {
      schema: {
        operationId: 'listCacheEntries', summary: 'Cache entries with their bands, by scene id, by pages',
        description:
          'Every `global_scene_cache` row (valid and invalidated), ordered by `scene_id`, filtered by `valid`, `scene_id_prefix` and/or `pattern` (the glob of the invalidate route), with each band\'s object key and size. Pass `next_cursor` as `cursor` for the next page. For "most reused / recent / largest" see `GET /v1/cache/scenes`.',
        tags: ['admin'],
        querystring: cacheEntriesQuerySchema,
        response: { 200: cacheEntryPageSchema, ...errors },
      },
    },
    async (request): Promise<CacheEntryPageView> => {
      const q = request.query;
      const page = await postgres(() =>
        listCacheEntries(db, { valid: q.valid, sceneIdPrefix: q.scene_id_prefix, pattern: q.pattern, limit: q.limit, cursor: q.cursor }),
      );
      return { items: page.items.map(toCacheEntryView), next_cursor: page.nextCursor };
    },
  );
  done();
};
