/**
 * `/v1/admin`: cache administration (admin keys only). Placeholder: routes are being built (issue 4).
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import type { DB } from '@scenecache/db';
import type { DependencyTimeouts } from '../download-enqueue.js';

/** Options of {@link adminRoutes}. */
export interface AdminRoutesOptions {
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
}

/** The admin routes (registered under `/v1`). */
export const adminRoutes: FastifyPluginCallback<AdminRoutesOptions> = (_fastify, _options, done) => {
  done();
};
