/**
 * The dashboard page at `/` and its assets. Placeholder: being built (issue 4).
 */
import type { FastifyPluginCallback } from 'fastify';

/** The dashboard routes (registered at the root). */
export const dashboardRoutes: FastifyPluginCallback = (_fastify, _options, done) => {
  done();
};
