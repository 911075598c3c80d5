/**
 * bull-board (the BullMQ web UI) at `/admin/queues`, for admin keys only.
 *
 * - Auth: {@link Authenticator.adminUiHook} on every route of the board — the page, its JSON API
 *   (`/admin/queues/api/...`) and its static assets (`/admin/queues/static/...`). A browser cannot
 *   send a Bearer header to a page it navigates to, so HTTP Basic works too (any user name, an admin
 *   key as password); a 401 carries `WWW-Authenticate: Basic` so the browser prompts, and it then
 *   resends the credentials for every URL under the page. A tenant key gets 403. Open dev mode (no
 *   `ADMIN_API_KEY`, no key rows) leaves it open like the rest of the API.
 * - Queues: the scene download queue, and (when given) the workers' maintenance queue
 *   (`scenecache-maintenance`: the scheduled cache maintenance and job-row retention runs, each
 *   completed job's return value being its report).
 * - Read-only: jobs can be inspected, not retried, removed, cleaned, added or paused from the UI.
 *   `download_jobs` is the source of truth of every job; a job removed or added behind the API's
 *   back would leave a row queued forever or a job without a row. The maintenance queue's jobs
 *   belong to the workers' job schedulers.
 * - Encapsulation: the board lives in a plugin scope of its own, with plain compilers instead of the
 *   root's zod ones (its routes declare only `schema: {hide: true}`, which also keeps them out of
 *   the OpenAPI document), and its errors are answered like the API's: a Redis outage is 503
 *   `service_unavailable`, not bull-board's 500.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from './auth.js';
import type { DownloadQueue } from './download-enqueue.js';
import { toErrorReply } from './error-handler.js';

/** Where the board is served. */
export const ADMIN_QUEUES_PREFIX = '/admin/queues';

/** Options of {@link registerAdminQueues}. */
export interface AdminQueuesOptions {
  /** The scene download queue, shown on the board. */
  queue: DownloadQueue;
  /** The workers' maintenance queue (`MAINTENANCE_QUEUE`), shown after it; omitted: not shown. */
  maintenanceQueue?: Queue | undefined;
  /** Checks the admin key of every board request. */
  auth: Authenticator;
}

type BoardErrorHandler = Parameters<FastifyAdapter['setErrorHandler']>[0];
type BoardReply = ReturnType<BoardErrorHandler>;

/**
 * Mount bull-board at {@link ADMIN_QUEUES_PREFIX} on `app` (the root instance), behind an admin key
 * (see the module comment). The routes are added when the app loads its plugins.
 */
export function registerAdminQueues(app: FastifyInstance, options: AdminQueuesOptions): void {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(ADMIN_QUEUES_PREFIX);
  createBullBoard({
    queues: [options.queue, ...(options.maintenanceQueue ? [options.maintenanceQueue] : [])].map((queue) => new BullMQAdapter(queue, { readOnlyMode: true })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'scenecache queues' } },
  });
  // After createBullBoard, which installs bull-board's own handler (every error a 500).
  serverAdapter.setErrorHandler((error) => {
    const { status, body } = toErrorReply(error);
    if (status >= 500 && status !== 503) app.log.error({ err: error, status }, 'queue UI request failed');
    else app.log.warn({ status, error: body.error }, 'queue UI request failed');
    // bull-board's status type lists a few codes only; it passes any status through to the reply.
    return { status: status as BoardReply['status'], body };
  });

  void app.register(async (scope) => {
    // The root compilers expect zod schemas; the board's routes carry none (only `hide`), and should
    // a future version declare JSON schemas, they get Fastify's plain behaviour, not a crash.
    scope.setValidatorCompiler(() => (data: unknown) => ({ value: data }));
    scope.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
    scope.addHook('onRequest', options.auth.adminUiHook);
    await scope.register(serverAdapter.registerPlugin(), { prefix: ADMIN_QUEUES_PREFIX });
  });
}
