/**
 * `/v1/admin`: cache administration, admin keys only (a tenant key gets 403 before its request is
 * validated; no key, 401, from the auth hook). Invalidate scenes or bands, clean up invalid
 * entries and their objects, list entries, run the cache maintenance now, offboard a tenant. The
 * operations and their guarantees while jobs run are @scenecache/global-cache's
 * (`GlobalCacheAdmin`, global-cache-admin.ts; `CacheMaintenance`, cache-maintenance.ts) and
 * tenant-offboarding.ts's; these routes add what is HTTP's: request validation, a deadline on each
 * Postgres statement, 503 when the API runs without an S3 client and the operation needs S3,
 * logging through the request's logger.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { ScenecacheError, ValidationError, type Logger, type Settings } from '@scenecache/core';
import { listCacheEntries, type DB, type ProductLevel, type SceneCacheRow } from '@scenecache/db';
import { GlobalCacheAdmin, type CacheMaintenance } from '@scenecache/global-cache';
import type { ObjectStore } from '@scenecache/storage';
import { requireAdmin } from '../auth.js';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts } from '../download-enqueue.js';
import { ApiError, errorReplySchema } from '../error-handler.js';
import { TenantOffboarding } from '../tenant-offboarding.js';
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
import {
  maintenanceBodySchema,
  maintenanceReplySchema,
  offboardQuerySchema,
  offboardReplySchema,
  tenantParamsSchema,
  toMaintenanceReply,
  toOffboardReply,
  type CacheLifecycleSettings,
  type MaintenanceReply,
  type OffboardReply,
} from './lifecycle.schemas.js';

/** Options of {@link adminRoutes}. */
export interface AdminRoutesOptions {
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
  /**
   * The global bucket's object store. Band invalidation and cleanup delete objects with it and
   * answer 503 without it (dry runs, whole-scene invalidation and listing do not need it).
   */
  store?: ObjectStore | undefined;
  /**
   * The global cache's maintenance, run by `POST /v1/admin/cache/maintenance` (the app builds it
   * from the settings when it has a store); without it that route answers 503.
   */
  maintenance?: CacheMaintenance | undefined;
  /** Stops a maintenance run between batches (the app aborts it when it closes). */
  maintenanceSignal?: AbortSignal | undefined;
  /**
   * The settings these routes use: the life-cycle settings the maintenance reply reports, and the
   * buckets of offboarding (`TENANT_BUCKET_PREFIX`, `GLOBAL_BUCKET`).
   */
  settings: Pick<CacheLifecycleSettings, 'cacheUnusedTtlDays' | 'cacheInvalidRetentionDays'> & Pick<Settings, 'tenantBucketPrefix' | 'globalBucket'>;
}

/** Deadline (ms) of one bulk deletion of offboarding (a tenant's rows, its job rows in batches of 5,000). */
export const OFFBOARDING_BULK_POSTGRES_MS = 120_000;

const errors = { 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 503: errorReplySchema };
const bodyErrors = { ...errors, 413: errorReplySchema, 415: errorReplySchema };

/** The 503 of an operation that needs S3 when the API runs without a store. */
function missingStore(operation: string): ScenecacheError {
  return new ScenecacheError('service_unavailable', `${operation}, and this API runs without an S3 client`, { httpStatus: 503 });
}

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
export const adminRoutes: FastifyPluginCallback<AdminRoutesOptions> = (fastify, { db, timeouts, store, maintenance, maintenanceSignal, settings }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);
  const cacheAdmin = new GlobalCacheAdmin({
    db,
    store,
    listCap: ADMIN_SCENE_LIST_CAP,
    maxBandInvalidationScenes: MAX_BAND_INVALIDATION_SCENES,
    runPostgresStatement: postgres,
    missingStoreError: (operation) => missingStore(`${operation} deletes objects in the global bucket`),
  });
  const offboarding = new TenantOffboarding({
    db,
    store,
    tenantBucketPrefix: settings.tenantBucketPrefix,
    globalBucket: settings.globalBucket,
    runPostgres: postgres,
    runPostgresBulk: (call) => callDependency('Postgres', Math.max(timeouts.postgresMs, OFFBOARDING_BULK_POSTGRES_MS), call),
    missingStoreError: () => missingStore("delete_objects lists and deletes the tenant bucket's objects"),
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

  app.post(
    '/admin/cache/maintenance',
    {
      schema: {
        operationId: 'runCacheMaintenance', summary: "Run the global cache's maintenance now (or preview it with a dry run)",
        description:
          'The maintenance the workers run every MAINTENANCE_INTERVAL_MS, run now in this API process with its settings (GLOBAL_CACHE_MAX_BYTES, CACHE_UNUSED_TTL_DAYS, CACHE_INVALID_RETENTION_DAYS: keep them equal to the workers\'): abort incomplete multipart uploads older than a day; delete invalid entries invalidated more than CACHE_INVALID_RETENTION_DAYS ago; delete valid products unused for CACHE_UNUSED_TTL_DAYS; while the registered bytes exceed the budget, evict down to 90 % of it (invalid rows first, then least recently used); reconcile the bucket under `sentinel-2/` with the table (orphan objects older than a day deleted, band entries whose object vanished dropped). ' +
          'Removed means gone: the row and its band objects are deleted; the next job for the product downloads it again. A product a job is downloading is skipped (`skipped`) and left to the next run. Tenant buckets are never touched. ' +
          'One run at a time fleet-wide (session advisory lock `cache-maintenance`): 409 `maintenance_running` when a scheduled run (or another request) holds it. `dry_run: true` takes no lock, changes nothing and reports what a run would do now (never 409). No body is `{}`. Needs S3 (503 without it). Each rule lists at most 100 scene ids (`scene_ids_truncated`). The request lasts as long as the run (the whole bucket prefix is listed); when the API shuts down, the run stops between batches (`aborted: true`).',
        tags: ['admin'],
        body: maintenanceBodySchema,
        response: { 200: maintenanceReplySchema, ...bodyErrors, 409: errorReplySchema },
      },
    },
    async (request): Promise<MaintenanceReply> => {
      const dryRun = request.body?.dry_run ?? false;
      if (maintenance === undefined) throw missingStore('the cache maintenance lists and deletes objects in the global bucket');
      // The request's logger is a child of the app's pino logger (buildApp's `loggerInstance`): a
      // pino Logger, typed by Fastify as its narrower base logger.
      const report = await maintenance.run({ dryRun, signal: maintenanceSignal, log: request.log as unknown as Logger });
      if (!report.ran) {
        throw new ApiError(409, 'maintenance_running', 'another cache maintenance run (a scheduled one or another request) holds the lock; try again when it is done, or use dry_run: true');
      }
      return toMaintenanceReply(report, settings);
    },
  );

  app.delete(
    '/admin/tenants/:tenant_id',
    {
      schema: {
        operationId: 'offboardTenant', summary: 'Offboard a tenant: remove its tenant_scenes rows, and optionally its bucket objects and job history',
        description:
          "Removes the tenant's `tenant_scenes` rows; with `delete_objects=true` every object in its bucket (TENANT_BUCKET_PREFIX + tenant_id; the bucket itself stays, empty); with `purge_jobs=true` its finished job rows (the statistics lose them too) — without it they stay as history. " +
          'Options are query parameters (`?dry_run=true&delete_objects=true&purge_jobs=true`), all false by default; a request body is refused (400), so options sent as a body are never silently ignored. Try `dry_run=true` first: it changes nothing and reports what would be removed (S3 is only listed), busy or not. ' +
          'A tenant with queued or active jobs is refused with 409 `tenant_busy` (revoke its API keys first — this route does not — so that no new job arrives). The global bucket, the global cache and other tenants are never touched; a tenant id whose bucket would be GLOBAL_BUCKET is 400. ' +
          'Idempotent: a tenant with nothing left (or never seen) answers 200 with zeros, so a run that failed half-way (503) is finished by running it again. `delete_objects=true` needs S3 (503 without it).',
        tags: ['admin'],
        params: tenantParamsSchema,
        querystring: offboardQuerySchema,
        response: { 200: offboardReplySchema, ...errors, 409: errorReplySchema },
      },
      // Options sent as a body (`{"dry_run": true}`) would be ignored and the run would be real:
      // refuse any body before anything runs.
      preValidation: (request, _reply, next) => {
        if (request.body === undefined || request.body === null) {
          next();
          return;
        }
        next(new ValidationError('invalid_payload', 'this DELETE takes no body: pass dry_run, delete_objects and purge_jobs as query parameters (?dry_run=true&delete_objects=true&purge_jobs=true)'));
      },
    },
    async (request): Promise<OffboardReply> => {
      const q = request.query;
      const result = await offboarding.offboard(
        { tenantId: request.params.tenant_id, dryRun: q.dry_run ?? false, deleteObjects: q.delete_objects ?? false, purgeJobs: q.purge_jobs ?? false },
        request.log,
      );
      return toOffboardReply(result);
    },
  );
  done();
};
