/**
 * `GET /healthz` (liveness: the process answers; no dependency is touched, so a Postgres outage
 * never gets the pod restarted) and `GET /readyz` (readiness: Postgres, Redis, S3 answer and
 * shutdown has not started).
 */
import type { FastifyPluginCallback } from 'fastify';
import { z } from 'zod';
import type { Readiness } from '../readiness.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';

const livenessSchema = z.object({ status: z.literal('ok') });
const readinessSchema = z.object({
  status: z.enum(['ok', 'failing', 'shutting_down']),
  checks: z.record(z.string(), z.enum(['ok', 'fail'])),
  errors: z.record(z.string(), z.string()).optional(),
});

/** Options of {@link healthRoutes}. */
export interface HealthRoutesOptions {
  readiness: Readiness;
}

export const healthRoutes: FastifyPluginCallback<HealthRoutesOptions> = (fastify, { readiness }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.get(
    '/healthz',
    { logLevel: 'warn', schema: { operationId: 'getLiveness', summary: 'Liveness', tags: ['health'], response: { 200: livenessSchema } } },
    (_request, reply) => {
      void reply.send({ status: 'ok' as const });
    },
  );

  app.get(
    '/readyz',
    {
      logLevel: 'warn',
      schema: { operationId: 'getReadiness', summary: 'Readiness: Postgres, Redis and S3 answer', tags: ['health'], response: { 200: readinessSchema, 503: readinessSchema } },
    },
    async (_request, reply) => {
      const { ready, ...body } = await readiness.check();
      return reply.code(ready ? 200 : 503).send(body);
    },
  );
  done();
};
