/**
 * The API process (`npm run api`): settings, Postgres pool, producer Redis connection and queues
 * (downloads; the workers' maintenance queue for bull-board), S3 client (readiness, admin routes),
 * the Fastify app on API_HOST:API_PORT, and an ordered shutdown.
 * Exit codes (core cli.ts): 2 for bad arguments or settings (one line), 1 when it cannot start.
 */
import { createLogger, loadSettings, parseCommandLine, runCommand, type Settings } from '@scenecache/core';
import { createDb, hasActiveApiKeys } from '@scenecache/db';
import { createS3Client, ObjectStore, resolveS3Endpoint } from '@scenecache/storage';
import { buildApp } from './app.js';
import { createDownloadQueue, createProducerRedis } from './download-queue.js';
import { createMaintenanceQueue } from './maintenance-queue.js';
import { installShutdown } from './shutdown.js';

const USAGE = `usage: npm run api
Serves the HTTP API on API_HOST:API_PORT (default 0.0.0.0:8080) until SIGTERM or SIGINT.
Settings come from the environment (README, "Settings"): DATABASE_URL, REDIS_URL, S3_*, AUTH_MODE, ADMIN_API_KEY, …`;

/** Key HEADed in the global bucket by `/readyz`: any answer but an error proves S3 serves us. */
const S3_PROBE_KEY = '.scenecache-readyz';

async function main(settings: Settings): Promise<void> {
  const logger = createLogger('api', settings.logLevel);
  const db = createDb(settings.databaseUrl, { max: 10, applicationName: 'scenecache-api', connectionTimeoutMillis: 3_000, logger });
  const redis = createProducerRedis(settings.redisUrl, logger);
  const queue = createDownloadQueue(redis, settings.queuePrefix, logger);
  // The workers' maintenance queue, for bull-board (read-only): same connection, same prefix.
  const maintenanceQueue = createMaintenanceQueue(redis, settings.queuePrefix, logger);
  const s3Endpoint = await resolveS3Endpoint(settings, logger);
  const s3 = createS3Client({ ...settings, s3Endpoint: s3Endpoint.endpoint });
  const store = new ObjectStore(s3, { logger });

  const app = buildApp({
    settings,
    db,
    queue,
    redis,
    logger,
    store,
    maintenanceQueue,
    checks: {
      // TODO(storage): a public ObjectStore.headBucket would check the bucket itself; HeadObject of
      // a probe key answers 404 for a missing key or bucket and fails only when S3 is unreachable
      // or refuses our credentials.
      s3: () => store.headObject(settings.globalBucket, S3_PROBE_KEY),
    },
  });

  installShutdown(
    [
      { name: 'readiness', close: () => Promise.resolve(app.readiness.beginShutdown()) },
      { name: 'http', close: () => app.close() },
      { name: 'queue', close: () => queue.close() },
      { name: 'maintenance-queue', close: () => maintenanceQueue.close() },
      { name: 'redis', close: () => redis.quit().catch(() => redis.disconnect()) },
      { name: 's3', close: async () => { s3.destroy(); await s3Endpoint.close(); } },
      { name: 'postgres', close: () => db.destroy() },
    ],
    settings.shutdownTimeoutMs,
    logger,
  );

  await app.listen({ host: settings.apiHost, port: settings.apiPort });
  if (settings.authMode === 'open') {
    logger.warn('AUTH_MODE=open: /v1 is open to anyone, no key is checked (demo and local development only)');
  } else if (settings.adminApiKey === undefined && (await hasActiveApiKeys(db).catch(() => undefined)) === false) {
    logger.warn('AUTH_MODE=keys and no key exists yet: every /v1 request is 401 until you create one (npm run keys -- create --admin) or set ADMIN_API_KEY');
  }
}

runCommand('scenecache api', async () => {
  parseCommandLine(process.argv.slice(2), { usage: USAGE });
  await main(loadSettings());
});
