/**
 * Ordered shutdown of the API process under a deadline (`SHUTDOWN_TIMEOUT_MS`): fail readiness,
 * close HTTP (in-flight requests finish, new ones get 503), then the queue, Redis, S3 and the
 * database. A failing step is logged and the next one still runs. A second signal, or the deadline,
 * forces exit (close-with-grace).
 */
import closeWithGrace from 'close-with-grace';
import type { Logger } from '@scenecache/core';

/** One resource to close, in order. */
export interface ShutdownStep {
  name: string;
  close(): Promise<unknown>;
}

/**
 * Run the steps in order; each failure is logged, never thrown. Idempotent: a second call returns
 * the first call's promise.
 */
export function shutdownSequence(steps: readonly ShutdownStep[], logger: Logger): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () =>
    (running ??= (async () => {
      for (const step of steps) {
        try {
          await step.close();
          logger.debug({ step: step.name }, 'closed');
        } catch (err) {
          logger.warn({ err, step: step.name }, 'close failed');
        }
      }
    })());
}

/**
 * Install SIGTERM/SIGINT (and uncaught error) handling that runs `steps` in order within
 * `deadlineMs`, then exits (0 after a signal, 1 after an error or at the deadline).
 *
 * @param steps - the first should fail readiness; then the HTTP server, queue, Redis, database.
 */
export function installShutdown(steps: readonly ShutdownStep[], deadlineMs: number, logger: Logger): void {
  const shutdown = shutdownSequence(steps, logger);
  closeWithGrace(
    {
      delay: deadlineMs,
      logger: { error: (message: unknown) => logger.error({ detail: message }, 'shutdown') },
      onSecondSignal: (signal) => logger.error({ signal }, 'second signal: exiting now'),
      onTimeout: (delay) => logger.error({ deadlineMs: delay }, 'shutdown deadline passed: exiting now'),
    },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'shutting down after an uncaught error');
      else logger.info({ signal, deadlineMs }, 'shutting down');
      await shutdown();
      logger.info('shutdown complete');
    },
  );
}
