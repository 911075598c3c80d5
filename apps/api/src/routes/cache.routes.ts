/**
 * `/v1/cache`: cache statistics (from the `cache_daily_stats` / `tenant_daily_stats` views, the
 * figures Grafana shows too), the cached scenes, and the global cache's usage against its budget.
 * Read-only.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { getCacheStats, getCacheUsage, listCachedScenes, type DB } from '@scenecache/db';
import { requireAdmin, scopeTenant } from '../auth.js';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts } from '../download-enqueue.js';
import { errorReplySchema } from '../error-handler.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cachedScenesQuerySchema, cachedScenesSchema, cacheStatsQuerySchema, cacheStatsSchema, type CachedScenesView } from './cache.schemas.js';
import { cacheUsageQuerySchema, cacheUsageReplySchema, toCacheUsageReply, type CacheLifecycleSettings, type CacheUsageReply } from './lifecycle.schemas.js';

/** Options of {@link cacheRoutes}. */
export interface CacheRoutesOptions {
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
  /** The budget and life-cycle settings `GET /cache/usage` reports (this API's settings). */
  lifecycle: CacheLifecycleSettings;
}

const errors = { 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 503: errorReplySchema };

/** `GET /cache/stats`, `GET /cache/scenes` and `GET /cache/usage` (registered under `/v1`). */
export const cacheRoutes: FastifyPluginCallback<CacheRoutesOptions> = (fastify, { db, timeouts, lifecycle }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);

  app.get(
    '/cache/stats',
    {
      schema: {
        operationId: 'getCacheStats', summary: 'Cache statistics: totals, per UTC day, per tenant',
        description:
          'Jobs count on the UTC day they finished (queued and active jobs are not counted). `requests` = completed jobs, `hit_ratio` = reused / requests, `bytes_saved` = bytes_delivered − bytes_downloaded. `since` and `until` are days, both inclusive. A tenant key gets its tenant only (`tenant_id` defaults to it; another tenant is 403).',
        tags: ['cache'],
        querystring: cacheStatsQuerySchema,
        response: { 200: cacheStatsSchema, ...errors },
      },
    },
    async (request) => {
      const q = request.query;
      const tenantId = scopeTenant(request, q.tenant_id);
      return postgres(() => getCacheStats(db, { tenantId, since: q.since, until: q.until }));
    },
  );

  app.get(
    '/cache/scenes',
    {
      schema: {
        operationId: 'listCachedScenes', summary: 'Cached scenes: most reused, most recently used, or largest first',
        description: 'The global cache spans every tenant: admin keys only (403 for a tenant key).',
        tags: ['cache'],
        querystring: cachedScenesQuerySchema,
        response: { 200: cachedScenesSchema, ...errors },
      },
    },
    async (request): Promise<CachedScenesView> => {
      requireAdmin(request);
      const q = request.query;
      const scenes = await postgres(() => listCachedScenes(db, { order: q.order, limit: q.limit, level: q.level, tile: q.tile }));
      return {
        items: scenes.map((scene) => ({
          ...scene,
          last_accessed_at: scene.last_accessed_at?.toISOString() ?? null,
          created_at: scene.created_at.toISOString(),
        })),
      };
    },
  );

  app.get(
    '/cache/usage',
    {
      schema: {
        operationId: 'getCacheUsage', summary: 'The global cache: bytes, objects and products it holds, against its budget',
        description:
          'What `global_scene_cache` registers now (one aggregate over the table): bytes (valid and invalid rows: what GLOBAL_CACHE_MAX_BYTES limits), band objects, products, the invalid ones and their bytes, and the last use of the least recently used valid product (`oldest_access_at`: the next one eviction or expiry would remove). ' +
          'With the budget (GLOBAL_CACHE_MAX_BYTES; `null` when unset): the share used, the bytes over it, and the 90 % eviction brings the cache back to; and the life-cycle settings (CACHE_UNUSED_TTL_DAYS, CACHE_INVALID_RETENTION_DAYS, MAINTENANCE_INTERVAL_MS) — those of this API process, which should equal the workers\'. ' +
          'The global cache is shared by every tenant: admin keys only (403 for a tenant key, whose footprint is its own bucket).',
        tags: ['cache'],
        querystring: cacheUsageQuerySchema,
        response: { 200: cacheUsageReplySchema, ...errors },
      },
    },
    async (request): Promise<CacheUsageReply> => {
      requireAdmin(request);
      const usage = await postgres(() => getCacheUsage(db));
      return toCacheUsageReply(usage, lifecycle);
    },
  );
  done();
};
