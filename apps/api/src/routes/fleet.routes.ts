/**
 * `GET /v1/fleet`: queue depth and upstream slots in use. Placeholder: being built (issue 4).
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import type { Settings } from '@scenecache/core';
import type { DB } from '@scenecache/db';
import type { DependencyTimeouts, DownloadQueue } from '../download-enqueue.js';

/** Options of {@link fleetRoutes}. */
export interface FleetRoutesOptions {
  db: Kysely<DB>;
  queue: DownloadQueue;
  settings: Settings;
  timeouts: DependencyTimeouts;
}

/** The fleet route (registered under `/v1`). */
export const fleetRoutes: FastifyPluginCallback<FleetRoutesOptions> = (_fastify, _options, done) => {
  done();
};
