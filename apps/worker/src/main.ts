/**
 * `npm run worker`: one worker process of the fleet. Several may run at once, on one machine or
 * many; they coordinate only through Postgres (advisory locks, the cache tables) and Redis.
 */
import { createLogger, loadSettings, ScenecacheError, type Settings } from '@scenecache/core';
import { startHealthServer, workerProbes } from './health-server.js';
import { installShutdown } from './shutdown.js';
import { startWorkerRuntime } from './worker-runtime.js';

async function main(): Promise<void> {
  let settings: Settings;
  try {
    settings = loadSettings();
  } catch (err) {
    console.error(err instanceof ScenecacheError ? err.message : err);
    process.exit(2);
  }
  const logger = createLogger('worker', settings.logLevel);
  const runtime = await startWorkerRuntime(settings, logger);
  let closing = false;
  // Liveness stays 200 through the drain; readiness turns 503 as soon as the shutdown begins.
  const probes = workerProbes({ shuttingDown: () => closing, worker: runtime.worker, redis: runtime.connection, dependencies: runtime.dependencies });
  // The default port moves on when taken (several local workers); a port set on purpose is strict.
  const health = await startHealthServer(settings.workerMetricsPort, probes, '0.0.0.0', runtime.metrics, !settings.workerMetricsPortSet);
  if (health.port !== settings.workerMetricsPort && settings.workerMetricsPort !== 0) {
    logger.warn({ healthPort: health.port, defaultPort: settings.workerMetricsPort }, `the default WORKER_METRICS_PORT ${settings.workerMetricsPort} is taken: /healthz, /readyz and /metrics listen on ${health.port}`);
  }
  logger.info({ healthPort: health.port }, 'health endpoint listening');

  installShutdown(
    {
      onStart: () => {
        closing = true;
      },
      drain: () => runtime.worker.close(),
      cancel: () => runtime.worker.cancelAllJobs('shutdown'),
      // The health server closes last: `/healthz` answers 200 until the process is about to exit.
      steps: [...runtime.closeSteps, { name: 'health server', close: () => new Promise((resolve) => health.server.close(resolve)) }],
    },
    settings.shutdownTimeoutMs,
    logger,
  );
}

main().catch((err: unknown) => {
  console.error('worker failed to start:', err);
  process.exit(1);
});
