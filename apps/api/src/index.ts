/**
 * @scenecache/api — the HTTP API as a library: {@link buildApp} on injected dependencies (tests,
 * the demo), the producer queue factories, and the readiness and shutdown helpers `main.ts` uses.
 *
 * Glossary:
 * - enqueue: insert the `download_jobs` row, then add the BullMQ job under the same id.
 * - replay: a request repeating an Idempotency-Key; it gets the first job back (200).
 * - readiness: whether the process should get traffic (`/readyz`); liveness: whether it runs (`/healthz`).
 */
export * from './app.js';
export * from './download-enqueue.js';
export * from './download-queue.js';
export * from './maintenance-queue.js';
export * from './tenant-offboarding.js';
export * from './download-job.view.js';
export * from './error-handler.js';
export * from './readiness.js';
export * from './shutdown.js';
