/**
 * Per-key rate limiting of the `/v1` routes. Placeholder: being built (issue 4).
 */
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Settings } from '@scenecache/core';

/** Options of {@link registerRateLimit}. */
export interface RateLimitOptions {
  redis: Redis;
  settings: Settings;
}

/** Rate-limit the routes of the `v1` scope, per API key. */
export function registerRateLimit(_v1: FastifyInstance, _options: RateLimitOptions): void {}
