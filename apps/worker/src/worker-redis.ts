/**
 * How a worker talks to Redis.
 *
 * - Connections (ioredis options, github.com/redis/ioredis `RedisOptions`): every one waits for
 *   Redis for ever (`maxRetriesPerRequest: null`, as BullMQ workers require) but none can hang on a
 *   connection that went silent (accepts, never answers — a lost NAT or conntrack entry): a socket
 *   with a command waiting and no byte received for {@link WORKER_SOCKET_TIMEOUT_MS} is destroyed
 *   and opened again (`socketTimeout`), and idle sockets send TCP keepalives. Our own commands
 *   (slot waiters, the CDSE token, the wake-ups) also fail after `REDIS_COMMAND_TIMEOUT_MS`
 *   (`commandTimeout`): the job is then handed back as in any Redis outage. BullMQ's own
 *   connection gets no command timeout: its blocking reads wait up to 10 s by design
 *   (docs.bullmq.io/guide/going-to-production#maxretriesperrequest), and BullMQ bounds them itself.
 * - BullMQ needs `maxmemory-policy noeviction`: any other policy may evict queue keys under memory
 *   pressure and lose jobs (docs.bullmq.io/guide/going-to-production#max-memory-policy).
 */
import type { RedisOptions, Redis } from 'ioredis';
import type { Logger } from '@scenecache/core';

/**
 * A socket with a command waiting this long (ms) and no reply is dead. Above BullMQ's longest
 * blocking read (10 s `BZPOPMIN`, 10 s `XREAD BLOCK` of QueueEvents) plus its 1 s watchdog margin.
 */
export const WORKER_SOCKET_TIMEOUT_MS = 20_000;

/**
 * ioredis options of a worker connection.
 * @param commandTimeoutMs - per-command deadline (ms) for connections that issue no blocking
 *   command; `undefined` for BullMQ's connections (Worker, QueueEvents).
 */
export function workerRedisOptions(commandTimeoutMs: number | undefined): RedisOptions {
  return {
    maxRetriesPerRequest: null,
    socketTimeout: WORKER_SOCKET_TIMEOUT_MS,
    keepAlive: 10_000,
    ...(commandTimeoutMs === undefined ? {} : { commandTimeout: commandTimeoutMs }),
  };
}

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
