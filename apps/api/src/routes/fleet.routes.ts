/**
 * `GET /v1/fleet`: what the worker fleet is doing now, for the dashboard and for autoscalers —
 * the scene download queue's depth by state (from Redis), the upstream slots in use (granted
 * Postgres advisory locks, see @scenecache/db advisory-lock.ts) and the CDSE account's rolling
 * 30-day transfer budget (`upstream_transfers`, see @scenecache/db upstream-transfer.repository.ts).
 * It reveals no tenant data, so any key may read it.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { QUEUE_DEPTH_STATES, type Settings } from '@scenecache/core';
import { countUpstreamSlotsInUse, upstreamWindow, type DB } from '@scenecache/db';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts, DownloadQueue } from '../download-enqueue.js';
import { errorReplySchema } from '../error-handler.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { fleetSchema, type FleetView, type QueueDepthState } from './fleet.schemas.js';

/** Options of {@link fleetRoutes}. */
export interface FleetRoutesOptions {
  db: Kysely<DB>;
  /** The scene download queue (its job counts are read). */
  queue: DownloadQueue;
  /**
   * `upstreamConcurrency` (UPSTREAM_CONCURRENCY, the slot count) and `upstreamMonthlyBytes`
   * (UPSTREAM_MONTHLY_BYTES, the budget in bytes): both must equal the workers' settings.
   */
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

/**
 * The transfer budget's figures: bytes started in the 30 days before `now`, against `budgetBytes`.
 *
 * @param budgetBytes - `UPSTREAM_MONTHLY_BYTES` (bytes, ≥ 1).
 * @param now - the window's end. @defaultValue now
 * @throws whatever the Postgres query throws.
 */
export async function upstreamBudget(db: Kysely<DB>, budgetBytes: number, now: Date = new Date()): Promise<FleetView['upstream_budget']> {
  const window = await upstreamWindow(db, now);
  return {
    window_bytes: window.bytes,
    budget_bytes: budgetBytes,
    used_ratio: window.bytes / budgetBytes,
    frees_at: window.oldestLeavesAt?.toISOString() ?? null,
  };
}

/** `GET /fleet` (registered under `/v1`). */
export const fleetRoutes: FastifyPluginCallback<FleetRoutesOptions> = (fastify, { db, queue, settings, timeouts }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/fleet',
    {
      schema: {
        operationId: 'getFleet', summary: 'Fleet state: queue depth, upstream slots in use and the monthly transfer budget',
        description:
          'Read live: the scene download queue by state (Redis), the upstream (CDSE) download slots held fleet-wide (Postgres advisory locks) ' +
          'and the CDSE account\'s rolling 30-day transfer budget (Postgres `upstream_transfers`): `upstream_budget.window_bytes` started in the last 30 days ' +
          'against `budget_bytes` (UPSTREAM_MONTHLY_BYTES), their `used_ratio`, and `frees_at`, when the oldest download leaves the window (null when it is empty). ' +
          'Once the next file would not fit in the budget (so from just below a `used_ratio` of 1), jobs that need a download wait (`waiting_for: upstream_budget`) until `frees_at`, while jobs served from the cache go on. ' +
          '`queue.backlog` (waiting + prioritized + delayed + active) is the figure an autoscaler scales workers on, e.g. a KEDA `metrics-api` trigger ' +
          '(`url: http://<api>/v1/fleet`, `valueLocation: queue.backlog`, `targetValue` ≈ WORKER_CONCURRENCY, with an API key in `authenticationRef`). ' +
          'Fleet-wide, no tenant data: any key may read it. 503 when Redis or Postgres does not answer.',
        tags: ['fleet'],
        response: { 200: fleetSchema, 401: errorReplySchema, 503: errorReplySchema },
      },
    },
    async (): Promise<FleetView> => {
      const limit = settings.upstreamConcurrency;
      const [queueView, inUse, budget] = await Promise.all([
        callDependency('Redis', timeouts.redisMs, () => queueDepth(queue)),
        callDependency('Postgres', timeouts.postgresMs, () => countUpstreamSlotsInUse(db, limit)),
        callDependency('Postgres', timeouts.postgresMs, () => upstreamBudget(db, settings.upstreamMonthlyBytes)),
      ]);
      return { queue: queueView, upstream_slots: { in_use: inUse, limit }, upstream_budget: budget, at: new Date().toISOString() };
    },
  );
  done();
};
