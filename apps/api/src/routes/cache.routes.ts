/**
 * `/v1/cache`: cache statistics (from the `cache_daily_stats` / `tenant_daily_stats` views, the
 * figures Grafana shows too) and the cached scenes. Read-only.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { getCacheStats, listCachedScenes, type DB } from '@scenecache/db';
import { requireAdmin, scopeTenant } from '../auth.js';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts } from '../download-enqueue.js';
import { errorReplySchema } from '../error-handler.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { cachedScenesQuerySchema, cachedScenesSchema, cacheStatsQuerySchema, cacheStatsSchema, type CachedScenesView } from './cache.schemas.js';

/** Options of {@link cacheRoutes}. */
export interface CacheRoutesOptions {
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
}

const errors = { 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 503: errorReplySchema };

/** `GET /cache/stats` and `GET /cache/scenes` (registered under `/v1`). */
export const cacheRoutes: FastifyPluginCallback<CacheRoutesOptions> = (fastify, { db, timeouts }, done) => {
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
  done();
};
