/**
 * The API's side of the scene download queue: a producer. Producers fail fast — with Redis down a
 * request must get 503 at once, not wait in ioredis's offline queue — so the connection disables
 * the offline queue and bounds connects and commands (docs.bullmq.io/guide/going-to-production,
 * "Queue/Worker connection options"). ioredis keeps reconnecting in the background.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { isDependencyUnavailable, SCENE_DOWNLOAD_QUEUE, type DownloadJobData, type DownloadJobResult, type Logger } from '@scenecache/core';
import type { DownloadQueue } from './download-enqueue.js';

/** A producer's socket with a command waiting this long (ms) without any reply is dead: reconnect. */
export const PRODUCER_SOCKET_TIMEOUT_MS = 5_000;

/** Options of {@link createProducerRedis}. */
export interface ProducerRedisOptions {
  /** TCP connect deadline (ms). @defaultValue 2000 */
  connectTimeoutMs?: number;
  /** Per-command deadline (ms); a Queue issues no blocking commands. @defaultValue 2000 */
  commandTimeoutMs?: number;
}

/**
 * An ioredis connection for producers: no offline queue (commands fail at once while disconnected),
 * bounded connect and command times, reconnects every ≤ 2 s. A connection that goes silent (accepts,
 * never answers: a lost NAT or conntrack entry) is destroyed after {@link PRODUCER_SOCKET_TIMEOUT_MS}
 * without a reply and opened again (ioredis `socketTimeout`), with TCP keepalive on idle sockets;
 * otherwise every command would time out for ever after Redis is back. Connection errors are logged
 * once per outage, not once per reconnect attempt.
 */
export function createProducerRedis(url: string, logger: Logger, options: ProducerRedisOptions = {}): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    commandTimeout: options.commandTimeoutMs ?? 2_000,
    maxRetriesPerRequest: 1,
    socketTimeout: PRODUCER_SOCKET_TIMEOUT_MS,
    keepAlive: 10_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger.error({ err }, 'Redis connection failed; reconnecting');
  });
  redis.on('ready', () => {
    if (down) logger.info('Redis connection restored');
    down = false;
  });
  return redis;
}

/**
 * The scene download queue on a producer connection, with an `error` listener (an unhandled
 * `error` event would crash the process). BullMQ re-emits every connection error of the client;
 * {@link createProducerRedis} already logs those once per outage, so here they are debug only.
 *
 * @param prefix - BullMQ key prefix (`QUEUE_PREFIX`).
 */
export function createDownloadQueue(redis: Redis, prefix: string, logger: Logger): DownloadQueue {
  const queue = new Queue<DownloadJobData, DownloadJobResult>(SCENE_DOWNLOAD_QUEUE, { connection: redis, prefix });
  queue.on('error', (err) => {
    if (isDependencyUnavailable(err)) logger.debug({ err }, 'download queue: Redis connection error');
    else logger.error({ err }, 'download queue error');
  });
  return queue;
}
