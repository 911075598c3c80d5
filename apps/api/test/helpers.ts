/**
 * The API on real resources for integration tests: a database of its own (cloned from the migrated
 * template), Redis with a queue prefix of its own, and (optionally) a test S3 for the readiness
 * check. Everything is injected into `buildApp` exactly as `main.ts` does it.
 */
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { DestinationStream } from 'pino';
import { createLogger, loadSettings, type Settings } from '@scenecache/core';
import type { DB } from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';
import { createTestDatabase, type TestDatabase } from '@scenecache/testing';
import { buildApp, type ApiTimeouts } from '../src/app.js';
import type { DownloadQueue } from '../src/download-enqueue.js';
import { createDownloadQueue, createProducerRedis } from '../src/download-queue.js';
import { createMaintenanceQueue } from '../src/maintenance-queue.js';
import type { ReadinessCheck } from '../src/readiness.js';

/** Redis of the test machine (CI may set REDIS_URL). */
export const TEST_REDIS_URL = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? process.env.REDIS_URL : 'redis://127.0.0.1:6379';

/** A URL where nothing listens (port 1): connections are refused at once. */
export const CLOSED_REDIS_URL = 'redis://127.0.0.1:1';

export const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
export const L1C = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';

/** A reply as the tests look at it. */
export interface TestReply {
  status: number;
  /** Parsed JSON body (`{}` when empty). */
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

/** Request options of {@link TestApi.request}: `json` is sent as application/json, `body` as is. */
export interface TestRequest {
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
}

/**
 * Send a request to a listening server. (Tests use a real socket, not `app.inject()`: its
 * light-my-request requires the ESM-only `cookie` 2, which jest's module runtime cannot load.)
 */
export async function httpRequest(baseUrl: string, method: string, path: string, options: TestRequest = {}): Promise<TestReply> {
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${baseUrl}${path}`, { method, headers, body });
  const text = await res.text();
  const parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  return { status: res.status, body: parsed, headers: Object.fromEntries(res.headers) };
}

/**
 * Send `raw` bytes over a new socket and read the reply until the server closes the connection,
 * or until `timeoutMs` (then the socket is destroyed and `closedByServer` is false).
 * @returns the reply as latin1 text and how long the server took to close (ms).
 */
export async function rawRequest(baseUrl: string, raw: Buffer, timeoutMs = 5_000): Promise<{ reply: string; closedByServer: boolean; ms: number }> {
  const { hostname, port } = new URL(baseUrl);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closedByServer: !timedOut, ms: Date.now() - started });
    });
    socket.on('error', reject);
    socket.write(raw);
  });
}

/** A running test API and its resources. */
export interface TestApi {
  app: FastifyInstance;
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  request(method: string, path: string, options?: TestRequest): Promise<TestReply>;
  settings: Settings;
  db: Kysely<DB>;
  /** URL of the test database (`undefined` when the caller passed `db`). */
  databaseUrl: string | undefined;
  queue: DownloadQueue;
  /** The workers' maintenance queue under the test's prefix, as `main.ts` gives it to the app (bull-board). */
  maintenanceQueue: Queue;
  redis: Redis;
  prefix: string;
  /** Every job in the queue, whatever its state. */
  queueJobCount(): Promise<number>;
  /** Rows in `download_jobs`. */
  rowCount(): Promise<number>;
  /** Empty the table and the queue. */
  reset(): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@link startTestApi}. */
export interface TestApiOptions {
  /** @defaultValue {@link TEST_REDIS_URL} */
  redisUrl?: string;
  /** Use this database instead of a fresh test database (e.g. one that is unreachable). */
  db?: Kysely<DB>;
  checks?: Record<string, ReadinessCheck>;
  timeouts?: Partial<ApiTimeouts>;
  /** More settings (environment variables), e.g. `ADMIN_API_KEY`. `AUTH_MODE` defaults to `keys` with an `ADMIN_API_KEY`, else `open`. */
  env?: Record<string, string>;
  /** The global bucket's store, for the admin routes that delete objects (none by default). */
  store?: ObjectStore;
  /** Where the API's log lines go (with `LOG_LEVEL` from `env`, default silent). */
  logDestination?: DestinationStream;
}

/** Build the API on a fresh database and queue prefix; `close()` releases everything. */
export async function startTestApi(options: TestApiOptions = {}): Promise<TestApi> {
  // A queue prefix of its own (unless given): no two tests share queue keys or rate-limit counters.
  const prefix = options.env?.QUEUE_PREFIX ?? `test-${randomUUID()}`;
  // Open unless the test gives an admin key or a mode: most tests are about something else than auth.
  const authMode = options.env?.ADMIN_API_KEY === undefined ? 'open' : 'keys';
  const settings = loadSettings({ LOG_LEVEL: 'silent', AUTH_MODE: authMode, ...options.env, QUEUE_PREFIX: prefix });
  const logger = createLogger('api-test', settings.logLevel, options.logDestination);
  const testDb: TestDatabase | undefined = options.db === undefined ? await createTestDatabase() : undefined;
  const db = options.db ?? testDb!.db;
  const redisUrl = options.redisUrl ?? TEST_REDIS_URL;
  const redis = createProducerRedis(redisUrl, logger);
  const queue = createDownloadQueue(redis, prefix, logger);
  const maintenanceQueue = createMaintenanceQueue(redis, prefix, logger);
  if (redisUrl === TEST_REDIS_URL) await queue.waitUntilReady();
  const app = buildApp({ settings, db, queue, redis, logger, checks: options.checks, timeouts: options.timeouts, store: options.store, maintenanceQueue });
  const baseUrl = await app.listen({ host: '127.0.0.1', port: 0 });

  return {
    app,
    baseUrl,
    request: (method, path, requestOptions) => httpRequest(baseUrl, method, path, requestOptions),
    settings,
    db,
    databaseUrl: testDb?.url,
    queue,
    maintenanceQueue,
    redis,
    prefix,
    async queueJobCount() {
      const counts = await queue.getJobCounts('wait', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children');
      return Object.values(counts).reduce((a, b) => a + b, 0);
    },
    async rowCount() {
      const { n } = await db.selectFrom('download_jobs').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return n;
    },
    async reset() {
      await db.deleteFrom('download_jobs').execute();
      await queue.obliterate({ force: true });
    },
    async close() {
      await app.close();
      if (redis.status === 'ready') await Promise.all([queue.obliterate({ force: true }), maintenanceQueue.obliterate({ force: true })]);
      await Promise.all([queue.close(), maintenanceQueue.close()]);
      if (redis.status === 'ready') await redis.quit();
      else redis.disconnect();
      if (testDb) await testDb.drop();
      else await db.destroy();
    },
  };
}
