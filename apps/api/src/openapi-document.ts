/**
 * The OpenAPI document the API serves at `/docs/json`, produced in-process without listening and
 * without Postgres, Redis or S3: for `npm run client:generate` (scripts/generate-client.mjs, which
 * writes the typed client's types in packages/client) and for the test that checks the committed
 * client against it.
 *
 * The document comes from the route schemas only, so the app is built on inert dependencies: a pool
 * that never connects (pg connects on the first query; none is made), an ioredis client with
 * `lazyConnect` (it connects on the first command; none is sent) and a stand-in for the BullMQ
 * queue (a real `Queue` connects at once). Settings are the defaults, never the caller's
 * environment, so the same code always gives the same document.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { OpenAPI } from 'openapi-types';
import { createLogger, loadSettings, SCENE_DOWNLOAD_QUEUE } from '@scenecache/core';
import { createDb } from '@scenecache/db';
import { buildApp } from './app.js';
import type { DownloadQueue } from './download-enqueue.js';

/** Where the inert pool points; nothing ever connects to it (port 1 refuses at once if it did). */
const UNUSED_DATABASE_URL = 'postgres://openapi-document@127.0.0.1:1/none';

/**
 * The OpenAPI 3 document of the API, as `GET /docs/json` serves it with the default settings.
 * Builds the app, loads its plugins (`ready()`), reads `app.swagger()` and closes the app again.
 */
export async function buildOpenApiDocument(): Promise<OpenAPI.Document> {
  const settings = loadSettings({ AUTH_MODE: 'open', LOG_LEVEL: 'silent' });
  const logger = createLogger('openapi-document', 'silent');
  const db = createDb(UNUSED_DATABASE_URL, { max: 1 });
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false, port: 1 });
  // A Queue in name only: bull-board's adapter checks `instanceof Queue` and reads `name`; no route
  // is called, so no method of it runs.
  const queue = Object.assign(Object.create(Queue.prototype) as DownloadQueue, { name: SCENE_DOWNLOAD_QUEUE });
  const app = buildApp({ settings, db, queue, redis, logger });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    redis.disconnect();
    await db.destroy();
  }
}
