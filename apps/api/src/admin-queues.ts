/**
 * bull-board at `/admin/queues`, behind an admin key. Placeholder: being built (issue 4).
 */
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from './auth.js';
import type { DownloadQueue } from './download-enqueue.js';

/** Options of {@link registerAdminQueues}. */
export interface AdminQueuesOptions {
  queue: DownloadQueue;
  auth: Authenticator;
}

/** Mount bull-board at `/admin/queues` on `app`. */
export function registerAdminQueues(_app: FastifyInstance, _options: AdminQueuesOptions): void {}
