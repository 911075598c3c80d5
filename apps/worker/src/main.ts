/**
 * `npm run worker`: one worker process of the fleet. Several may run at once, on one machine or
 * many; they coordinate only through Postgres (advisory locks, the cache tables) and Redis.
 * Exit codes (core cli.ts): 2 for bad arguments or settings (one line), 1 when it cannot start.
 */
import { createLogger, loadSettings, parseCommandLine, runCommand, type Settings } from '@scenecache/core';
import { startHealthServer, workerProbes } from './health-server.js';
import { installShutdown } from './shutdown.js';
import { startWorkerRuntime } from './worker-runtime.js';

const USAGE = `usage: npm run worker
Runs one worker of the fleet (WORKER_CONCURRENCY jobs at once) until SIGTERM or SIGINT; /healthz,
/readyz and /metrics on WORKER_METRICS_PORT (default 9464, or the next free port when unset).
Settings come from the environment (README, "Settings").`;

async function main(settings: Settings): Promise<void> {
  const logger = createLogger('worker', settings.logLevel);
  const runtime = await startWorkerRuntime(settings, logger);
  let closing = false;
  // Liveness stays 200 through the drain; readiness turns 503 as soon as the shutdown begins.
  const probes = workerProbes({ shuttingDown: () => closing, worker: runtime.worker, redis: runtime.connection, dependencies: runtime.dependencies });
  // The default port moves on when taken (several local workers); a port set on purpose is strict.
  const health = await startHealthServer(settings.workerMetricsPort, probes, '0.0.0.0', runtime.metrics, !settings.workerMetricsPortSet).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    throw new Error(`WORKER_METRICS_PORT ${settings.workerMetricsPort} is in use by another process (unset it to take the next free port)`, { cause: err });
  });
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

runCommand('scenecache worker', async () => {
  parseCommandLine(process.argv.slice(2), { usage: USAGE });
  await main(loadSettings());
});
