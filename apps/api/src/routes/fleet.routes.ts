/**
 * `GET /v1/fleet`: what the worker fleet is doing now, for the dashboard and for autoscalers —
 * the scene download queue's depth by state (from Redis) and the upstream slots in use (granted
 * Postgres advisory locks, see @scenecache/db advisory-lock.ts). It reveals no tenant data, so
 * any key may read it.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { QUEUE_DEPTH_STATES, type Settings } from '@scenecache/core';
import { countUpstreamSlotsInUse, type DB } from '@scenecache/db';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts, DownloadQueue } from '../download-enqueue.js';
import { errorReplySchema } from '../error-handler.js';
import type { ZodTypeProvider } from '../zod-validation.js';
import { fleetSchema, type FleetView, type QueueDepthState } from './fleet.schemas.js';

/** Options of {@link fleetRoutes}. */
export interface FleetRoutesOptions {
  db: Kysely<DB>;
  /** The scene download queue (its job counts are read). */
  queue: DownloadQueue;
  /** `upstreamConcurrency` (UPSTREAM_CONCURRENCY): the slot count; must equal the workers' setting. */
  settings: Settings;
  timeouts: DependencyTimeouts;
}

/**
 * Job counts of the queue by state (`QUEUE_DEPTH_STATES`, the gauge's states) and their sum.
 *
 * @throws whatever the Redis call throws.
 */
async function queueDepth(queue: DownloadQueue): Promise<FleetView['queue']> {
  const counts = await queue.getJobCounts(...Object.values(QUEUE_DEPTH_STATES));
  const byState = Object.fromEntries(
    (Object.entries(QUEUE_DEPTH_STATES) as [QueueDepthState, string][]).map(([state, type]) => [state, counts[type] ?? 0]),
  ) as Record<QueueDepthState, number>;
  const backlog = Object.values(byState).reduce((sum, n) => sum + n, 0);
  return { ...byState, backlog };
}

/** `GET /fleet` (registered under `/v1`). */
export const fleetRoutes: FastifyPluginCallback<FleetRoutesOptions> = (fastify, { db, queue, settings, timeouts }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/fleet',
    {
      schema: {
        summary: 'Fleet state: queue depth and upstream slots in use',
        description:
          'Read live: the scene download queue by state (Redis) and the upstream (CDSE) download slots held fleet-wide (Postgres advisory locks). ' +
          '`queue.backlog` (waiting + prioritized + delayed + active) is the figure an autoscaler scales workers on, e.g. a KEDA `metrics-api` trigger ' +
          '(`url: http://<api>/v1/fleet`, `valueLocation: queue.backlog`, `targetValue` ≈ WORKER_CONCURRENCY, with an API key in `authenticationRef`). ' +
          'Fleet-wide, no tenant data: any key may read it. 503 when Redis or Postgres does not answer.',
        tags: ['fleet'],
        response: { 200: fleetSchema, 401: errorReplySchema, 503: errorReplySchema },
      },
    },
    async (): Promise<FleetView> => {
      const limit = settings.upstreamConcurrency;
      const [queueView, inUse] = await Promise.all([
        callDependency('Redis', timeouts.redisMs, () => queueDepth(queue)),
        callDependency('Postgres', timeouts.postgresMs, () => countUpstreamSlotsInUse(db, limit)),
      ]);
      return { queue: queueView, upstream_slots: { in_use: inUse, limit }, at: new Date().toISOString() };
    },
  );
  done();
};
