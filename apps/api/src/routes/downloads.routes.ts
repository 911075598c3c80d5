/**
 * `/v1/downloads`: enqueue one job or a batch, read a job (or wait for it to end), list jobs,
 * cancel a job.
 *
 * Request shapes are checked by the route schemas (zod, from the job contract in @scenecache/core),
 * their meaning (product name, bands for the level, tenant id, callback URL) by the enqueue service.
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CALLBACK_HEADERS, downloadBatchSchema, downloadRequestSchema, isFinishedStatus, jobViewSchema, ScenecacheError } from '@scenecache/core';
import { findJobById, isExpiredJobId, listJobs, type DB, type DownloadJobRow } from '@scenecache/db';
import { canSeeTenant, principalOf, requireTenants, scopeTenant } from '../auth.js';
import { callDependency } from '../dependency-call.js';
import type { DownloadCancelService } from '../download-cancel.js';
import type { DependencyTimeouts, DownloadEnqueueService, EnqueueCaller } from '../download-enqueue.js';
import { enqueuedJobSchema, jobPageSchema, jobSchema, toEnqueuedJobView, toJobView } from '../download-job.view.js';
import { errorReplySchema } from '../error-handler.js';
import type { JobEndWaiter } from '../job-end-waiter.js';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { enqueueHeadersSchema, getJobQuerySchema, jobParamsSchema, listJobsQuerySchema } from './downloads.schemas.js';

/** Options of {@link downloadsRoutes}. */
export interface DownloadsRoutesOptions {
  enqueue: DownloadEnqueueService;
  cancel: DownloadCancelService;
  /** Long-polls (`?wait=`) wait on it. */
  jobEnds: JobEndWaiter;
  /** Aborted when the app begins closing: long-polls answer at once with the current view. */
  closing: AbortSignal;
  db: Kysely<DB>;
  timeouts: DependencyTimeouts;
  /** `DOWNLOAD_JOBS_RETENTION_DAYS`: an unknown id made before the cutoff answers 404 `expired`. */
  retentionDays: number;
}

/** The key whose callback secret signs the callbacks of the jobs this request enqueues. */
function callerOf(request: FastifyRequest): EnqueueCaller {
  const principal = principalOf(request);
  return { keyId: principal.kind === 'open' ? null : principal.keyId };
}

/**
 * The completion callback as OpenAPI describes it (the `callbacks` of the enqueue operations):
 * a POST of the job view to `callback_url`, signed.
 */
const COMPLETION_CALLBACK = {
  jobEnded: {
    '{$request.body#/callback_url}': {
      post: {
        requestBody: {
          description: `The job's view (as GET /v1/downloads/{id} returns it) when it ended, as JSON. Headers: \`${CALLBACK_HEADERS.signature}: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the API key's callback signing secret>\` (refuse a t more than a few minutes old), \`${CALLBACK_HEADERS.jobId}\`, \`${CALLBACK_HEADERS.delivery}\` (the same on every attempt: de-duplicate on it), \`${CALLBACK_HEADERS.attempt}\`.`,
          required: true,
          content: { 'application/json': { schema: z.toJSONSchema(jobViewSchema, { target: 'openapi-3.0', io: 'output' }) } },
        },
        responses: {
          '2XX': { description: 'Delivered: no further attempt.' },
          '410': { description: 'Gone: the delivery is given up (state `failed`), no further attempt.' },
          default: { description: 'Anything else (or no answer within CALLBACK_TIMEOUT_MS): retried with exponential backoff and jitter, up to CALLBACK_MAX_ATTEMPTS attempts. Redirects are not followed.' },
        },
      },
    },
  },
};

const errors = { 400: errorReplySchema, 401: errorReplySchema, 403: errorReplySchema, 413: errorReplySchema, 415: errorReplySchema, 503: errorReplySchema };

export const downloadsRoutes: FastifyPluginCallback<DownloadsRoutesOptions> = (fastify, { enqueue, cancel, jobEnds, closing, db, timeouts, retentionDays }, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);

  /**
   * The job's row, if the caller may see it.
   * @throws ScenecacheError 404 `expired` (deleted by retention) or `not_found` (unknown, or
   *   another tenant's: 403 would confirm the id exists).
   */
  const visibleJob = async (request: FastifyRequest, id: string): Promise<DownloadJobRow> => {
    const row = await postgres(() => findJobById(db, id));
    // Deleted by retention: told apart by the time in its UUIDv7 (ids made before retention
    // existed, and other shapes, stay not_found). The same for every key: it reveals no tenant.
    if (!row && isExpiredJobId(id, retentionDays)) {
      throw new ScenecacheError('expired', `download job ${id} finished more than ${retentionDays} days ago: its record was deleted (DOWNLOAD_JOBS_RETENTION_DAYS); its figures remain in /v1/cache/stats`, { httpStatus: 404 });
    }
    if (!row || !canSeeTenant(request, row.tenant_id)) throw new ScenecacheError('not_found', `no download job ${id}`, { httpStatus: 404 });
    return row;
  };

  /**
   * Wait (at most `seconds`) for the job of `row` to end, holding no database connection; then
   * its row as it is. Ends early when the client goes away or the app closes.
   */
  const waitForEnd = async (request: FastifyRequest, reply: FastifyReply, row: DownloadJobRow, seconds: number): Promise<DownloadJobRow> => {
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) gone.abort();
    };
    reply.raw.once('close', onClose);
    try {
      const outcome = await jobEnds.wait(row.id, seconds * 1_000, AbortSignal.any([closing, gone.signal]), async () => {
        const now = await findJobById(db, row.id);
        return now === undefined || isFinishedStatus(now.status);
      });
      request.log.debug({ jobId: row.id, outcome }, 'long-poll ended');
    } finally {
      reply.raw.off('close', onClose);
    }
    return (await postgres(() => findJobById(db, row.id))) ?? row;
  };

  app.post(
    '/downloads',
    {
      schema: {
        operationId: 'enqueueDownload', summary: 'Enqueue a scene download',
        description:
          '202 with the new job. With an `Idempotency-Key` already used by this tenant for the same request: 200 with that job (its current status); for a different request: 409. With `callback_url`, the job\'s view is POSTed there once it ends, signed with the API key\'s callback secret (see the `jobEnded` callback); 400 `invalid_callback_url` for a URL that is not https (or http to loopback when allowed), carries credentials or is too long, 400 `callback_secret_missing` when the key has no callback secret.',
        tags: ['downloads'],
        headers: enqueueHeadersSchema,
        body: downloadRequestSchema,
        response: { 200: enqueuedJobSchema, 202: enqueuedJobSchema, 409: errorReplySchema, ...errors },
        callbacks: COMPLETION_CALLBACK,
      },
    },
    async (request, reply) => {
      requireTenants(request, [request.body.tenant_id]);
      const { row, created } = await enqueue.enqueue(request.body, request.headers['idempotency-key'], request.log, callerOf(request));
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
        description: 'Each item may carry a `callback_url` (as `POST /v1/downloads`).',
        tags: ['downloads'],
        body: downloadBatchSchema,
        response: { 202: z.object({ jobs: z.array(enqueuedJobSchema) }), ...errors },
        callbacks: COMPLETION_CALLBACK,
      },
    },
    async (request, reply) => {
      requireTenants(request, request.body.jobs.map((job) => job.tenant_id));
      const rows = await enqueue.enqueueBatch(request.body.jobs, request.log, callerOf(request));
      return reply.code(202).send({ jobs: rows.map(toEnqueuedJobView) });
    },
  );

  app.get(
    '/downloads/:id',
    {
      schema: {
        operationId: 'getDownload', summary: 'A download job and its result; with `wait`, as soon as it ends',
        description:
          'With `?wait=SECONDS` (0–60): a long-poll — the reply comes as soon as the job ends (completed, failed, cancelled), or after the wait with the job as it is then (200 either way: look at `status`). The server holds no database connection while it waits; it answers at once when it shuts down.',
        tags: ['downloads'],
        params: jobParamsSchema,
        querystring: getJobQuerySchema,
        response: { 200: jobSchema, 400: errorReplySchema, 401: errorReplySchema, 404: errorReplySchema, 503: errorReplySchema },
      },
    },
    async (request, reply) => {
      const row = await visibleJob(request, request.params.id);
      const wait = request.query.wait ?? 0;
      if (wait === 0 || isFinishedStatus(row.status)) return toJobView(row);
      return toJobView(await waitForEnd(request, reply, row, wait));
    },
  );

  app.delete(
    '/downloads/:id',
    {
      schema: {
        operationId: 'cancelDownload', summary: 'Cancel a download job',
        description:
          'A queued or delayed job is cancelled at once: 200 with `status: cancelled`. An active job stops at its next step: 202 with `cancel_requested: true` (its status turns `cancelled` then — or `completed` when it was past its last step); a download other jobs wait for is never aborted: the job finishes and registers the bands it is streaming, then stops before the copy. An already cancelled job: 200 (idempotent). A completed or failed job: 409 `job_finished`. Another tenant\'s job is 404. Its completion callback, if any, is POSTed once it is cancelled.',
        tags: ['downloads'],
        params: jobParamsSchema,
        response: { 200: jobSchema, 202: jobSchema, 401: errorReplySchema, 404: errorReplySchema, 409: errorReplySchema, 503: errorReplySchema },
      },
    },
    async (request, reply) => {
      const row = await visibleJob(request, request.params.id);
      const outcome = await cancel.cancel(row, request.log);
      return reply.code(outcome.state === 'cancel_requested' ? 202 : 200).send(toJobView(outcome.row));
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
