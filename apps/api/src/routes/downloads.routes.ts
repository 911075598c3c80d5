/**
 * `/v1/downloads`: enqueue one job or a batch, read a job, list jobs.
 *
 * Request shapes are checked by the route schemas (zod, from the job contract in @scenecache/core),
 * their meaning (product name, bands for the level, tenant id) by the enqueue service.
 */
import type { FastifyPluginCallback } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { downloadBatchSchema, downloadRequestSchema, ScenecacheError } from '@scenecache/core';
import { findJobById, isExpiredJobId, listJobs, type DB } from '@scenecache/db';
import { canSeeTenant, requireTenants, scopeTenant } from '../auth.js';
import { callDependency } from '../dependency-call.js';
import type { DependencyTimeouts, DownloadEnqueueService } from '../download-enqueue.js';
import { enqueuedJobSchema, jobPageSchema, jobSchema, toEnqueuedJobView, toJobView } from '../download-job.view.js';
import { errorReplySchema } from '../error-handler.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { enqueueHeadersSchema, jobParamsSchema, listJobsQuerySchema } from './downloads.schemas.js';

/** Options of {@link downloadsRoutes}. */
export interface DownloadsRoutesOptions {
  enqueue: DownloadEnqueueService;
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
  /** `DOWNLOAD_JOBS_RETENTION_DAYS`: an unknown id made before the cutoff answers 404 `expired`. */
  retentionDays: number;
}

const errors = { 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 413: errorReplySchema, 415: errorReplySchema, 503: errorReplySchema };

export const downloadsRoutes: FastifyPluginCallback<DownloadsRoutesOptions> = (fastify, { enqueue, db, timeouts, retentionDays }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);

  app.post(
    '/downloads',
    {
      schema: {
        operationId: 'enqueueDownload', summary: 'Enqueue a scene download',
        description:
          '202 with the new job. With an `Idempotency-Key` already used by this tenant for the same request: 200 with that job (its current status); for a different request: 409.',
        tags: ['downloads'],
        headers: enqueueHeadersSchema,
        body: downloadRequestSchema,
        response: { 200: enqueuedJobSchema, 202: enqueuedJobSchema, 409: errorReplySchema, ...errors },
      },
    },
    async (request, reply) => {
      requireTenants(request, [request.body.tenant_id]);
      const { row, created } = await enqueue.enqueue(request.body, request.headers['idempotency-key'], request.log);
      void reply.header('location', `${request.url.split('?')[0]}/${encodeURIComponent(row.id)}`);
      if (!created) void reply.header('idempotent-replayed', 'true');
      return reply.code(created ? 202 : 200).send(toEnqueuedJobView(row));
    },
  );

  app.post(
    '/downloads/batch',
    {
      schema: {
        operationId: 'enqueueDownloadBatch', summary: 'Enqueue up to MAX_BATCH_SIZE scene downloads, all or none',
        tags: ['downloads'],
        body: downloadBatchSchema,
        response: { 202: z.object({ jobs: z.array(enqueuedJobSchema) }), ...errors },
      },
    },
    async (request, reply) => {
      requireTenants(request, request.body.jobs.map((job) => job.tenant_id));
      const rows = await enqueue.enqueueBatch(request.body.jobs, request.log);
      return reply.code(202).send({ jobs: rows.map(toEnqueuedJobView) });
    },
  );

  app.get(
    '/downloads/:id',
    {
      schema: {
        operationId: 'getDownload', summary: 'A download job and its result',
        tags: ['downloads'],
        params: jobParamsSchema,
        response: { 200: jobSchema, 401: errorReplySchema, 404: errorReplySchema, 503: errorReplySchema },
      },
    },
    async (request) => {
      const { id } = request.params;
      const row = await postgres(() => findJobById(db, id));
      // Deleted by retention: told apart by the time in its UUIDv7 (ids made before retention
      // existed, and other shapes, stay not_found). The same for every key: it reveals no tenant.
      if (!row && isExpiredJobId(id, retentionDays)) {
        throw new ScenecacheError('expired', `download job ${id} finished more than ${retentionDays} days ago: its record was deleted (DOWNLOAD_JOBS_RETENTION_DAYS); its figures remain in /v1/cache/stats`, { httpStatus: 404 });
      }
      // Another tenant's job is "not found" for a tenant key: 403 would confirm the id exists.
      if (!row || !canSeeTenant(request, row.tenant_id)) throw new ScenecacheError('not_found', `no download job ${id}`, { httpStatus: 404 });
      return toJobView(row);
    },
  );

  app.get(
    '/downloads',
    {
      schema: {
        operationId: 'listDownloads', summary: 'Download jobs, newest first, filtered, by pages',
        description: 'A tenant key lists only its tenant (`tenant_id` defaults to it; another tenant is 403).',
        tags: ['downloads'],
        querystring: listJobsQuerySchema,
        response: { 200: jobPageSchema, 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 503: errorReplySchema },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await postgres(() =>
        listJobs(db, {
          tenantId: scopeTenant(request, q.tenant_id),
          status: q.status,
          cacheStatus: q.cache_status,
          sceneId: q.scene_id,
          since: q.since,
          until: q.until,
          limit: q.limit,
          cursor: q.cursor,
        }),
      );
      return { items: page.items.map(toJobView), next_cursor: page.nextCursor };
    },
  );
  done();
};
