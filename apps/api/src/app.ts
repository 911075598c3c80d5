/**
 * The Fastify application, built from injected dependencies so tests build it on their own
 * database, Redis queue prefix and S3 check, and `main.ts` on the real ones. It owns none of them:
 * closing the app closes the HTTP server only (see shutdown.ts for the process's order).
 *
 * Versioned routes live in one plugin scope under `/v1` with the Bearer-auth hook (auth.ts) and the
 * per-key rate limit (rate-limit.ts), leaving `/healthz`, `/readyz`, `/metrics` and the dashboard
 * page at `/` open.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Queue } from 'bullmq';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { downloadJobOptions, jobEndedChannel, type Logger, type Settings } from '@scenecache/core';
import { pingDb, registeredCacheBytes, upstreamWindow, type DB } from '@scenecache/db';
import { createCacheMaintenance } from '@scenecache/global-cache';
import type { ObjectStore } from '@scenecache/storage';
import { callDependency } from './dependency-call.js';
import { DownloadEnqueueService, type DependencyTimeouts, type DownloadQueue } from './download-enqueue.js';
import { DownloadCancelService } from './download-cancel.js';
import { createCallbackQueue, JobEndAnnouncer } from './job-end-announcer.js';
import { JobEndWaiter } from './job-end-waiter.js';
import { Authenticator } from './auth.js';
import { clientErrorHandler, errorBody, frameworkErrors, registerErrorHandling, rejectNonUtf8Charset } from './error-handler.js';
import { registerOpenApi } from './openapi.js';
import { Readiness, type ReadinessCheck } from './readiness.js';
import { registerAdminQueues } from './admin-queues.js';
import { dashboardRoutes } from './dashboard/dashboard.routes.js';
import { registerRateLimit } from './rate-limit.js';
import { adminRoutes } from './routes/admin.routes.js';
import { cacheRoutes } from './routes/cache.routes.js';
import { fleetRoutes } from './routes/fleet.routes.js';
import { downloadsRoutes } from './routes/downloads.routes.js';
import { healthRoutes } from './routes/health.routes.js';
import { ApiMetrics, registerMetrics } from './routes/metrics.routes.js';
import { stacRoutes } from './stac/stac.routes.js';
import { serializerCompiler } from 'fastify-type-provider-zod';
import { zodValidatorCompiler } from './zod-validation.js';

/** Largest request body (bytes); larger bodies get 413 `payload_too_large`. A full batch is ~20 KiB. */
export const BODY_LIMIT_BYTES = 256 * 1024;

/** Deadlines (ms). */
export interface ApiTimeouts extends DependencyTimeouts {
  /** Per readiness check. @defaultValue 2000 */
  readonly readinessMs: number;
  /**
   * The whole request (headers and body) must arrive within this; a client that stalls (declares
   * `Content-Length: 100`, sends 8 bytes) gets 408 `request_timeout` and its connection closed,
   * at most a quarter of it (≤ 5 s) late: Node checks its connections at that interval
   * (`http.Server` `requestTimeout`, `connectionsCheckingInterval`). @defaultValue 30000
   */
  readonly requestMs: number;
}

const DEFAULT_TIMEOUTS: ApiTimeouts = Object.freeze({ postgresMs: 3_000, redisMs: 2_000, readinessMs: 2_000, requestMs: 30_000 });

/**
 * Longest path parameter (characters) the router hands to a route; a longer one gets 414
 * `uri_too_long`. Above every id's own limit, so a long id is told what is wrong with it (400).
 */
export const MAX_PATH_PARAM_LENGTH = 256;

/** What the API runs on. The caller creates these and closes them after `app.close()`. */
export interface ApiDeps {
  readonly settings: Settings;
  readonly db: Kysely<DB>;
  /** The scene download queue (`SCENE_DOWNLOAD_QUEUE`, `prefix: settings.queuePrefix`). */
  readonly queue: DownloadQueue;
  /** The queue's Redis connection (producer options: `enableOfflineQueue: false`); PINGed by `/readyz`. */
  readonly redis: Redis;
  /** Root logger; requests log through children with their request id. */
  readonly logger: Logger;
  /**
   * More readiness checks besides `postgres` and `redis`, by name, e.g. `s3` (HeadBucket on the
   * global bucket). Each must settle or honour the abort signal within `timeouts.readinessMs`.
   */
  readonly checks?: Readonly<Record<string, ReadinessCheck>>;
  /** @defaultValue postgres 3000, redis 2000, readiness 2000 */
  readonly timeouts?: Partial<ApiTimeouts>;
  /**
   * The object store (the global bucket and the tenant buckets), for the admin routes that list or
   * delete objects (band invalidation, cleanup, the cache maintenance, offboarding with
   * `delete_objects`). `main.ts` always passes it; without it those routes answer 503.
   */
  readonly store?: ObjectStore;
  /**
   * The workers' maintenance queue (`MAINTENANCE_QUEUE`, `prefix: settings.queuePrefix`; see
   * maintenance-queue.ts), shown read-only on bull-board. Omitted: the board shows the download
   * queue only.
   */
  readonly maintenanceQueue?: Queue;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The API's readiness; `shutdown.ts` fails it before closing the server. */
    readiness: Readiness;
  }
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keep a caller's `X-Request-Id` when it is sane (it goes into every log line), else make one. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
}

/**
 * Build the API: routes registered, plugins loaded on `app.ready()` / `app.listen()`. Not listening.
 */
export function buildApp(deps: ApiDeps): FastifyInstance {
  const timeouts: ApiTimeouts = { ...DEFAULT_TIMEOUTS, ...deps.timeouts };
  // Typed as Fastify's logger so the app is a plain FastifyInstance (plugins expect that type).
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance,
    bodyLimit: BODY_LIMIT_BYTES,
    requestIdHeader: false,
    genReqId: requestId,
    // Requests arriving while the server closes get our JSON 503 (hook below), not Fastify's.
    return503OnClosing: false,
    // Requests the HTTP parser rejects get our JSON error body too; so do URLs the router refuses.
    clientErrorHandler,
    frameworkErrors,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    requestTimeout: timeouts.requestMs,
    http: { headersTimeout: timeouts.requestMs, connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(timeouts.requestMs / 4))) },
  });
  app.setValidatorCompiler(zodValidatorCompiler);
  // Replies are checked against the route's response schema (fastify-type-provider-zod): a reply
  // that breaks its documented contract fails (500, logged), it is never sent as documented-but-wrong.
  app.setSerializerCompiler(serializerCompiler);
  // JSON only: a text/plain body is 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain');
  // JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset is refused, not misread.
  app.addHook('onRequest', rejectNonUtf8Charset);
  registerErrorHandling(app);

  const readiness = new Readiness(
    {
      postgres: () => pingDb(deps.db, timeouts.readinessMs),
      redis: () => deps.redis.ping(),
      ...deps.checks,
    },
    timeouts.readinessMs,
    deps.logger,
  );
  app.decorate('readiness', readiness);

  let closing = false;
  // Stops a maintenance run in progress (`POST /v1/admin/cache/maintenance`) between batches, so
  // that closing does not wait for a whole run.
  const closingSignal = new AbortController();
  app.addHook('preClose', (done) => {
    readiness.beginShutdown();
    closing = true;
    closingSignal.abort();
    done();
  });
  // A request still in flight when the server began closing (a long maintenance run) is answered
  // with `Connection: close`: its keep-alive socket would otherwise hold `close()` for the whole
  // keep-alive timeout (Fastify's 72 s) after the reply.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    // A callback hook that replies must not call done().
    if (closing) {
      void reply.code(503).header('connection', 'close').send(errorBody('service_unavailable', 'the server is shutting down; retry'));
      return;
    }
    done();
  });

  // OpenAPI at /docs/json, Swagger UI at /docs: registered first, it collects the routes added after it.
  registerOpenApi(app);

  // GET /metrics, and every request timed (a hook on the root instance sees every route).
  const metrics = new ApiMetrics(
    deps.queue,
    deps.logger,
    {
      windowBytes: async () => (await callDependency('Postgres', timeouts.postgresMs, () => upstreamWindow(deps.db))).bytes,
      budgetBytes: deps.settings.upstreamMonthlyBytes,
    },
    {
      registeredBytes: () => callDependency('Postgres', timeouts.postgresMs, () => registeredCacheBytes(deps.db)),
      budgetBytes: deps.settings.globalCacheMaxBytes,
    },
  );
  registerMetrics(app, metrics);

  // The global cache's maintenance, for `POST /v1/admin/cache/maintenance` (it needs S3). One
  // instance per app; the advisory lock keeps its runs from overlapping the workers' scheduled ones.
  const maintenance = deps.store && createCacheMaintenance(deps.settings, { db: deps.db, store: deps.store, logger: deps.logger, metrics });

  const enqueue = new DownloadEnqueueService({
    db: deps.db,
    queue: deps.queue,
    tenantBucketPrefix: deps.settings.tenantBucketPrefix,
    timeouts,
    logger: deps.logger,
    jobOptions: downloadJobOptions(deps.settings),
    requireIdempotencyKey: deps.settings.requireIdempotencyKey,
    onEnqueued: (jobs) => metrics.jobsEnqueued(jobs),
    callbackAllowHttpLoopback: deps.settings.callbackAllowHttpLoopback,
    bootstrapCallbackSecret: deps.settings.callbackSigningSecret !== undefined,
  });
  // Cancels (`DELETE /v1/downloads/{id}`) and long-polls (`?wait=`). The callbacks queue shares the
  // producer connection; long-polls subscribe on a connection of their own (opened at the first
  // one, with an offline queue: SUBSCRIBE waits for the connect). Both close with the app.
  const callbackQueue = createCallbackQueue(deps.redis, deps.settings.queuePrefix, deps.logger);
  const announcer = new JobEndAnnouncer({ db: deps.db, redis: deps.redis, callbackQueue, settings: deps.settings, timeouts });
  const cancel = new DownloadCancelService({ db: deps.db, queue: deps.queue, announcer, timeouts });
  const jobEnds = new JobEndWaiter({
    connect: () => deps.redis.duplicate({ enableOfflineQueue: true, lazyConnect: false }),
    channel: jobEndedChannel(deps.settings.queuePrefix),
    logger: deps.logger,
  });
  app.addHook('onClose', async () => {
    jobEnds.close();
    await callbackQueue.close();
  });
  const auth = new Authenticator({
    mode: deps.settings.authMode,
    adminApiKey: deps.settings.adminApiKey,
    db: deps.db,
    postgresMs: timeouts.postgresMs,
    logger: deps.logger,
  });
  app.decorateRequest('principal', null);
  void app.register(healthRoutes, { readiness });
  // The dashboard page at `/` (static; its script reads the /v1 API like any client).
  void app.register(dashboardRoutes);
  // bull-board at `/admin/queues`, admin keys only.
  registerAdminQueues(app, { queue: deps.queue, maintenanceQueue: deps.maintenanceQueue, auth });
  void app.register(
    (v1, _options, done) => {
      // Bearer API keys (auth.ts): sets request.principal, 401/503 before any body is read.
      v1.addHook('onRequest', auth.hook);
      // Per-key request budget (429 + Retry-After), counted in Redis across API replicas.
      registerRateLimit(v1, { redis: deps.redis, settings: deps.settings });
      void v1.register(downloadsRoutes, { enqueue, cancel, jobEnds, closing: closingSignal.signal, db: deps.db, timeouts, retentionDays: deps.settings.downloadJobsRetentionDays });
      void v1.register(cacheRoutes, { db: deps.db, timeouts, lifecycle: deps.settings });
      void v1.register(fleetRoutes, { db: deps.db, queue: deps.queue, settings: deps.settings, timeouts });
      void v1.register(adminRoutes, { db: deps.db, timeouts, store: deps.store, maintenance, maintenanceSignal: closingSignal.signal, settings: deps.settings });
      done();
    },
    { prefix: '/v1' },
  );
  // The STAC API (stac/stac.routes.ts): the same keys and request budget as /v1, in a scope of its own.
  void app.register(
    (stac, _options, done) => {
      stac.addHook('onRequest', auth.hook);
      registerRateLimit(stac, { redis: deps.redis, settings: deps.settings });
      void stac.register(stacRoutes, { db: deps.db, timeouts, store: deps.store, signedUrlTtlSeconds: deps.settings.stacSignedUrlTtlSeconds });
      done();
    },
    { prefix: '/stac/v1' },
  );
  return app;
}
