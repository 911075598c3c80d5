/**
 * Ordered shutdown of a worker process under a deadline (SHUTDOWN_TIMEOUT_MS): stop reporting
 * healthy, let BullMQ finish the active jobs; shortly before the deadline cancel what is still
 * running (each job hands itself back to the queue), then close the queue, Redis, the lock pool
 * and the database. A second signal forces exit (close-with-grace).
 */
import closeWithGrace from 'close-with-grace';
import type { Logger } from '@scenecache/core';

/** One resource to close, in order. */
export interface ShutdownStep {
  name: string;
  close(): Promise<unknown>;
}

/** Hooks of {@link installShutdown}. */
export interface ShutdownPlan {
  /** Called first: stop reporting ready (readiness fails; liveness stays up through the drain). */
  onStart(): void;
  /** Let active jobs finish (e.g. `worker.close()`); must resolve once they have. */
  drain(): Promise<unknown>;
  /** Cancel still-running jobs so they hand themselves back (e.g. `worker.cancelAllJobs()`). */
  cancel(): void;
  /** Closed in order after the drain. */
  steps: ShutdownStep[];
}

/**
 * Install SIGTERM/SIGINT handling. `deadlineMs` bounds the whole shutdown; jobs still running at
 * 80 % of it are cancelled.
 */
export function installShutdown(plan: ShutdownPlan, deadlineMs: number, logger: Logger): void {
  closeWithGrace({ delay: deadlineMs, logger: { error: (m: string) => logger.error(m) } }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error');
    else logger.info({ signal, deadlineMs }, 'shutting down');
    plan.onStart();
    const cancelTimer = setTimeout(() => {
      logger.warn('shutdown deadline near: cancelling running jobs');
      plan.cancel();
    }, Math.floor(deadlineMs * 0.8));
    try {
      await plan.drain();
    } finally {
      clearTimeout(cancelTimer);
    }
    for (const step of plan.steps) {
      try {
        await step.close();
      } catch (stepErr) {
        logger.warn({ err: stepErr, step: step.name }, 'close failed');
      }
    }
    logger.info('shutdown complete');
  });
}
