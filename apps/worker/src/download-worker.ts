/**
 * The BullMQ Worker of scene downloads and its settings.
 *
 * - `maxStalledCount: 3`: a job whose worker is killed is moved back to wait by the stalled check
 *   and survives at least two kills (docs.bullmq.io/guide/workers/stalled-jobs); the fourth stall
 *   fails it (recorded as `worker_lost` by the stalled-failure listener in worker-runtime.ts).
 * - `lockDuration` (`JOB_LOCK_DURATION_MS`, 30 s), renewed every half of it; when a renewal fails
 *   the job is cancelled through its AbortSignal (its upload aborts), since another worker may
 *   pick it up as stalled. A killed worker's jobs return to the queue within lockDuration +
 *   stalledInterval (`JOB_STALLED_INTERVAL_MS`, 15 s).
 * - Waiting for another job's download never blocks: the processor delays the job (DelayedError).
 */
import { Worker, type ConnectionOptions } from 'bullmq';
import { SCENE_DOWNLOAD_QUEUE, type DownloadJobData, type DownloadJobResult } from '@scenecache/core';
import { createSceneDownloadProcessor, type WorkerDeps } from './scene-download.processor.js';

/** Stalls (killed workers, lost locks) a job survives; the next one fails it. */
export const MAX_STALLED_COUNT = 3;

/** Tuning of {@link startDownloadWorker}; every field has a production default. */
export interface DownloadWorkerOptions {
  /** Jobs run at once in this process. @defaultValue settings.workerConcurrency */
  concurrency?: number;
  /** @defaultValue settings.jobLockDurationMs */
  lockDurationMs?: number;
  /** How often stalled jobs are looked for (ms). @defaultValue settings.jobStalledIntervalMs */
  stalledIntervalMs?: number;
  /** @defaultValue 3 */
  maxStalledCount?: number;
}

/**
 * Start consuming the scene download queue.
 * @param connection - a Redis connection for BullMQ (`maxRetriesPerRequest: null`).
 */
export function startDownloadWorker(deps: WorkerDeps, connection: ConnectionOptions, options: DownloadWorkerOptions = {}): Worker<DownloadJobData, DownloadJobResult> {
  const worker = new Worker<DownloadJobData, DownloadJobResult>(SCENE_DOWNLOAD_QUEUE, createSceneDownloadProcessor(deps), {
    connection,
    prefix: deps.settings.queuePrefix,
    concurrency: options.concurrency ?? deps.settings.workerConcurrency,
    lockDuration: options.lockDurationMs ?? deps.settings.jobLockDurationMs,
    stalledInterval: options.stalledIntervalMs ?? deps.settings.jobStalledIntervalMs,
    maxStalledCount: options.maxStalledCount ?? MAX_STALLED_COUNT,
    name: deps.workerId,
  });
  worker.on('error', (err) => deps.logger.error({ err }, 'worker error'));
  worker.on('lockRenewalFailed', (jobIds) => {
    for (const jobId of jobIds) {
      deps.logger.error({ jobId }, 'job lock renewal failed; cancelling the job');
      worker.cancelJob(jobId, 'lock renewal failed');
    }
  });
  worker.on('stalled', (jobId) => deps.logger.warn({ jobId }, 'job stalled; it will be retried'));
  return worker;
}
