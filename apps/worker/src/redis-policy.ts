/**
 * BullMQ needs Redis with `maxmemory-policy noeviction`: any other policy may evict queue keys
 * under memory pressure and lose jobs (docs.bullmq.io/guide/going-to-production#max-memory-policy).
 */
import type { Redis } from 'ioredis';
import type { Logger } from '@scenecache/core';

/** Warn loudly (once, at start) when Redis may evict keys. Never throws: managed Redis may forbid CONFIG. */
export async function checkRedisEvictionPolicy(redis: Redis, logger: Logger): Promise<string | undefined> {
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const policy = reply[1];
    if (policy !== 'noeviction') {
      logger.error({ policy }, `REDIS maxmemory-policy is ${policy}, not noeviction: queued jobs may be evicted and lost. Set maxmemory-policy noeviction.`);
    }
    return policy;
  } catch (err) {
    logger.warn({ err }, 'could not read Redis maxmemory-policy (CONFIG may be disabled); make sure it is noeviction');
    return undefined;
  }
}
