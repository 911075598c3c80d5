/**
 * Per-key rate limiting of the `/v1` routes: `@fastify/rate-limit` with its Redis store, so every
 * API replica counts against the same budget.
 *
 * - Budget: `RATE_LIMIT_MAX` requests per `RATE_LIMIT_WINDOW_MS` (a fixed window that starts at the
 *   key's first request; Redis `INCR` + `PEXPIRE` in one Lua script). A request is one unit whatever
 *   it carries: a batch of 100 jobs counts once, as request budgets of HTTP APIs do (and batches are
 *   the cheap way to enqueue much). `RATE_LIMIT_MAX=0` turns the limiter off.
 * - Whose budget: the API key (`request.principal.keyId`, set by the auth hook, which runs first: a
 *   request that fails auth never reaches the limiter); in open dev mode the client IP.
 *   `ADMIN_API_KEY` is exempt: it is the operators' key and must work during an incident, when
 *   scripts hammer the API. Admin keys of the `api_keys` table are limited like tenant keys.
 * - Over budget: 429 `rate_limited` (`{error: {code, message}}`) with `Retry-After` (s), before the
 *   body is read. Every limited reply carries `x-ratelimit-limit`, `x-ratelimit-remaining` and
 *   `x-ratelimit-reset` (s until the window ends).
 * - Redis down: fail open. The limiter is a protection, not part of any answer: with Redis away,
 *   enqueues fail with 503 anyway (they need Redis), while reads (Postgres) keep working. While the
 *   connection is not ready, requests pass at once without rate-limit headers (the producer
 *   connection has no offline queue); a command that fails or times out (2 s, the connection's
 *   `commandTimeout`) lets its request through too. Both are logged once per outage (warn), and the
 *   recovery once (info).
 *
 * Counters live at `{QUEUE_PREFIX}:ratelimit:key:<key id>` / `...:ip:<ip>`.
 */
import { createRequire } from 'node:module';
import rateLimit, { normalizeIP, type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { Redis } from 'ioredis';
import { ScenecacheError, type Settings } from '@scenecache/core';

/** Options of {@link registerRateLimit}. */
export interface RateLimitOptions {
  /** The producer connection (`enableOfflineQueue: false`, `commandTimeout` set): counters live here. */
  redis: Redis;
  /** `rateLimitMax`, `rateLimitWindowMs`, `queuePrefix` (namespace of the counters). */
  settings: Settings;
}

/** The Redis key prefix of the counters. */
export function rateLimitNamespace(settings: Pick<Settings, 'queuePrefix'>): string {
  return `${settings.queuePrefix}:ratelimit:`;
}

/** The counter's key (after the namespace) of a request: `key:<api key id>`, or `ip:<client ip>` in open mode. */
export function rateLimitKey(request: FastifyRequest): string {
  const principal = request.principal;
  if (principal !== null && principal.kind !== 'open') return `key:${principal.keyId ?? 'ADMIN_API_KEY'}`;
  return `ip:${normalizeIP(request.ip)}`;
}

type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, nameSpace: string) => FastifyRateLimitStore;

// The plugin's own Redis store (store/RedisStore.js), which it only builds itself when given `redis`;
// we build it to wrap it (outage logging). No typings: its shape is the plugin's store interface.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as RedisStoreCtor;

/** Logs when the counters become unreachable (once per outage) and when they are back. */
class CounterHealth {
  private failing = false;

  constructor(private readonly logger: FastifyBaseLogger) {}

  failed(reason: string, err?: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.logger.warn({ err }, `rate limiting suspended (fail-open): ${reason}; /v1 requests pass unlimited until Redis answers`);
  }

  ok(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info('rate limiting resumed: Redis answers again');
  }
}

/** The plugin's Redis store, reporting failures and successes to a {@link CounterHealth}. */
class ReportingStore implements FastifyRateLimitStore {
  constructor(
    private readonly inner: FastifyRateLimitStore,
    private readonly health: CounterHealth,
  ) {}

  incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void {
    this.inner.incr(
      key,
      (error, result) => {
        if (error) this.health.failed('a Redis command failed', error);
        else this.health.ok();
        callback(error, result);
      },
      timeWindow,
      max,
    );
  }

  child(routeOptions: RouteOptions & { path: string; prefix: string }): FastifyRateLimitStore {
    return new ReportingStore(this.inner.child(routeOptions), this.health);
  }
}

/** "60 s", "1.5 s", "250 ms". */
function formatWindow(ms: number): string {
  return ms >= 1_000 ? `${ms / 1_000} s` : `${ms} ms`;
}

/**
 * Rate-limit every route of the `v1` scope, per API key (see the module comment). Call it after the
 * auth hook is added and before the routes are registered. Does nothing when `rateLimitMax` is 0.
 */
export function registerRateLimit(v1: FastifyInstance, options: RateLimitOptions): void {
  const { redis, settings } = options;
  if (settings.rateLimitMax === 0) {
    v1.log.info('rate limiting is off (RATE_LIMIT_MAX=0)');
    return;
  }
  const health = new CounterHealth(v1.log);
  const redisStore = new RedisStore(false, false, redis, rateLimitNamespace(settings));
  void v1.register(rateLimit, {
    max: settings.rateLimitMax,
    timeWindow: settings.rateLimitWindowMs,
    // A route-level onRequest hook: it runs after the scope's auth hook, and before the body is read.
    hook: 'onRequest',
    // The plugin constructs `store` itself (`new store(options)`).
    store: class extends ReportingStore {
      constructor() {
        super(redisStore, health);
      }
    },
    skipOnError: true,
    keyGenerator: rateLimitKey,
    allowList: (request) => {
      const principal = request.principal;
      if (principal?.kind === 'admin' && principal.keyId === null) return true;
      if (redis.status !== 'ready') {
        health.failed(`the Redis connection is ${redis.status}`);
        return true;
      }
      return false;
    },
    errorResponseBuilder: (request, context) => {
      const whose = request.principal === null || request.principal.kind === 'open' ? 'client IP' : 'API key';
      return new ScenecacheError(
        'rate_limited',
        `rate limit exceeded: ${context.max} requests per ${formatWindow(settings.rateLimitWindowMs)} per ${whose}; retry in ${context.after}`,
        { httpStatus: 429, retryable: true },
      );
    },
  });
}
