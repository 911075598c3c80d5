/**
 * Completion callbacks: the workers deliver them, on their own BullMQ queue (`CALLBACK_QUEUE`)
 * with its own Worker, so a slow or dead receiver never holds a download job or its slot.
 *
 * One delivery = one BullMQ job (id = the download job's id; data: URL, key id, delivery id, the
 * body as serialized when the job ended). Each attempt:
 *
 * - signs the body with the key's callback secret (`api_keys.callback_secret`; `key_id` null:
 *   `CALLBACK_SIGNING_SECRET`), read at each attempt — a rotated secret signs the next attempt;
 * - re-checks the URL (`checkCallbackUrl`: https, or http to loopback when allowed — the rules
 *   may have tightened since the enqueue);
 * - POSTs the body with `X-Scenecache-Signature: t=<unix s>,v1=<hex HMAC-SHA256("<t>.<body>")>`,
 *   `X-Scenecache-Job-Id`, `X-Scenecache-Delivery`, `X-Scenecache-Delivery-Attempt`, within
 *   `CALLBACK_TIMEOUT_MS`, never following a redirect (a 3xx counts as a failed attempt);
 * - records the outcome on the job's row: a 2xx is `delivered`; 410 gives up (`failed`, no more
 *   attempts); anything else (another status, a timeout, a refused connection) is retried by
 *   BullMQ — exponential backoff from `CALLBACK_BACKOFF_MS` with jitter — until
 *   `CALLBACK_MAX_ATTEMPTS`, then `failed`.
 *
 * Nothing secret is logged: not the secret, not the signature, not the URL's path or query (a
 * receiver may put a token there) — only its origin.
 *
 * A sweep ({@link CALLBACK_SWEEP_INTERVAL_MS}) re-enqueues deliveries claimed on a row (`pending`)
 * that never reached the queue (the process that claimed one died before adding it): rows pending
 * for over {@link CALLBACK_SWEEP_GRACE_MS} whose BullMQ job does not exist. It looks back
 * {@link CALLBACK_SWEEP_LOOKBACK_MS} only — less than BullMQ keeps finished deliveries, so a
 * delivery that happened but could not be recorded is never sent again.
 */
import { Job, UnrecoverableError, Worker, type Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import {
  CALLBACK_HEADERS,
  CALLBACK_QUEUE,
  callbackJobDataSchema,
  checkCallbackUrl,
  isDependencyUnavailable,
  ScenecacheError,
  signCallback,
  type CallbackJobData,
  type Logger,
  type Settings,
} from '@scenecache/core';
import { findCallbackSecret, findPendingCallbacks, recordCallbackAttempt, type CallbackAttemptInput, type DB } from '@scenecache/db';
import type { JobEndAnnouncer } from './job-end-announcer.js';
import { workerRedisOptions } from './worker-redis.js';

/** How often each worker sweeps for lost deliveries (ms). */
export const CALLBACK_SWEEP_INTERVAL_MS = 60_000;
/** A pending delivery younger than this (ms since its job ended) is left to its announcer. */
export const CALLBACK_SWEEP_GRACE_MS = 120_000;
/** The sweep looks at jobs that ended this recently (ms): below the day BullMQ keeps delivered callbacks. */
export const CALLBACK_SWEEP_LOOKBACK_MS = 23 * 3_600_000;

/** What one attempt got: the receiver's status, or why there was none. */
export interface AttemptResult {
  /** HTTP status; `undefined` when no answer came. */
  status: number | undefined;
  /** Why no answer came (timeout, connection refused, …). */
  error?: string;
}

/**
 * POST one delivery. Never throws: a failure to get an answer is an {@link AttemptResult} with
 * `error`. The response body is discarded.
 *
 * @param timestamp - the signature's `t` (Unix seconds). @defaultValue now
 */
export async function postCallback(data: CallbackJobData, secret: string, attempt: number, timeoutMs: number, timestamp = Math.floor(Date.now() / 1000)): Promise<AttemptResult> {
  try {
    const res = await fetch(data.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'scenecache-callbacks/1',
        [CALLBACK_HEADERS.signature]: signCallback(secret, timestamp, data.body),
        [CALLBACK_HEADERS.jobId]: data.job_id,
        [CALLBACK_HEADERS.delivery]: data.delivery_id,
        [CALLBACK_HEADERS.attempt]: String(attempt),
      },
      body: data.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel().catch(() => undefined);
    return { status: res.status };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { status: undefined, error: reason };
  }
}

/** The URL's origin only (`https://host:port`): paths and queries may carry a receiver's token. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** What {@link startCallbackDelivery} needs. */
export interface CallbackDeliveryDeps {
  readonly settings: Settings;
  readonly db: Kysely<DB>;
  readonly logger: Logger;
  /** `CALLBACK_QUEUE` on the worker's command connection (the sweep adds to it). */
  readonly callbackQueue: Queue<CallbackJobData>;
  /** Enqueues the deliveries the sweep finds lost. */
  readonly announcer: JobEndAnnouncer;
}

/** The running delivery worker and sweep. */
export interface CallbackDelivery {
  readonly worker: Worker<CallbackJobData>;
  /** One sweep now (also run every {@link CALLBACK_SWEEP_INTERVAL_MS}). @returns deliveries re-enqueued. */
  sweep(): Promise<number>;
  /** Stop the sweep, let deliveries in flight finish (each bounded by `CALLBACK_TIMEOUT_MS`), close the connection. */
  close(): Promise<void>;
}

/**
 * The processor of one delivery attempt (see the module's doc).
 * @throws UnrecoverableError when the delivery is given up (410, no secret, a URL no longer
 *   allowed, bad data); an Error to have BullMQ retry it.
 */
export function createCallbackProcessor(deps: Pick<CallbackDeliveryDeps, 'settings' | 'db' | 'logger'>) {
  const { settings, db, logger } = deps;
  return async function deliverCallback(job: Job<CallbackJobData>): Promise<{ status: number }> {
    const parsed = callbackJobDataSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid callback job data: ${parsed.error.issues[0]?.message ?? 'unknown'}`);
    const data = parsed.data;
    const attempt = job.attemptsMade + 1;
    const final = attempt >= (job.opts.attempts ?? 1);
    const log = logger.child({ jobId: data.job_id, deliveryId: data.delivery_id, attempt, origin: originOf(data.url) });
    const record = (input: Omit<CallbackAttemptInput, 'attempt'>) => recordCallbackAttempt(db, data.job_id, { ...input, attempt });
    const giveUp = async (error: string, httpStatus: number | null = null): Promise<never> => {
      await record({ state: 'failed', httpStatus, error });
      log.warn({ status: httpStatus, error }, 'completion callback given up');
      throw new UnrecoverableError(error);
    };

    const secret = data.key_id === null ? settings.callbackSigningSecret : await findCallbackSecret(db, data.key_id);
    if (secret === undefined) {
      return giveUp(data.key_id === null ? 'no signing secret: CALLBACK_SIGNING_SECRET is not set on the workers' : 'no signing secret: the API key has none (or is gone)');
    }
    try {
      checkCallbackUrl(data.url, { allowHttpLoopback: settings.callbackAllowHttpLoopback });
    } catch (err) {
      return giveUp(err instanceof ScenecacheError ? err.message : String(err));
    }

    const result = await postCallback(data, secret, attempt, settings.callbackTimeoutMs);
    if (result.status !== undefined && result.status >= 200 && result.status < 300) {
      // Delivered: a failure to record it must not send it again.
      await record({ state: 'delivered', httpStatus: result.status, error: null }).catch((err: unknown) => log.error({ err }, 'callback delivered but not recorded'));
      log.info({ status: result.status }, 'completion callback delivered');
      return { status: result.status };
    }
    if (result.status === 410) return giveUp('410 Gone: the receiver does not want this delivery', 410);
    const error = result.status === undefined ? (result.error ?? 'no answer') : `answered HTTP ${result.status}`;
    await record({ state: final ? 'failed' : 'pending', httpStatus: result.status ?? null, error });
    if (final) {
      log.warn({ status: result.status, error }, 'completion callback failed: no attempt left');
      throw new UnrecoverableError(error);
    }
    log.info({ status: result.status, error }, 'completion callback attempt failed; will retry');
    throw new Error(`callback attempt ${attempt} failed: ${error}`);
  };
}

/**
 * One sweep: enqueue the deliveries claimed (`pending`) on rows of jobs that ended between
 * {@link CALLBACK_SWEEP_LOOKBACK_MS} and {@link CALLBACK_SWEEP_GRACE_MS} ago whose BullMQ job does
 * not exist (at most 500 a sweep). Several workers may sweep at once: the add is keyed by the job id.
 *
 * @param now - Unix ms. @defaultValue the clock
 * @returns deliveries enqueued.
 */
export async function sweepLostCallbacks(deps: Pick<CallbackDeliveryDeps, 'db' | 'logger' | 'callbackQueue' | 'announcer'>, now = Date.now()): Promise<number> {
  const rows = await findPendingCallbacks(deps.db, { finishedAfter: new Date(now - CALLBACK_SWEEP_LOOKBACK_MS), finishedBefore: new Date(now - CALLBACK_SWEEP_GRACE_MS) });
  let requeued = 0;
  for (const row of rows) {
    if (await Job.fromId(deps.callbackQueue, row.id)) continue;
    await deps.announcer.enqueueDelivery(row);
    requeued++;
    deps.logger.warn({ jobId: row.id }, 'completion callback was never enqueued: enqueued by the sweep');
  }
  return requeued;
}

/**
 * Start delivering callbacks: a BullMQ Worker on `CALLBACK_QUEUE` (`CALLBACK_CONCURRENCY` at once,
 * on a connection of its own) and the periodic sweep of lost deliveries.
 */
export function startCallbackDelivery(deps: CallbackDeliveryDeps): CallbackDelivery {
  const { settings, db, logger, callbackQueue, announcer } = deps;
  const connection = new Redis(settings.redisUrl, workerRedisOptions(undefined));
  connection.on('error', (err) => logger.debug({ err }, 'redis error (callbacks)'));
  const worker = new Worker<CallbackJobData>(CALLBACK_QUEUE, createCallbackProcessor(deps), {
    connection,
    prefix: settings.queuePrefix,
    concurrency: settings.callbackConcurrency,
  });
  // Connection errors are the dependency watch's to report (once per outage), not one line per retry.
  worker.on('error', (err) => (isDependencyUnavailable(err) ? logger.debug({ err }, 'callback worker: Redis connection error') : logger.error({ err }, 'callback worker error')));

  const sweep = () => sweepLostCallbacks({ db, logger, callbackQueue, announcer });
  const timer = setInterval(() => {
    sweep().catch((err: unknown) => logger.warn({ err }, 'callback sweep failed; the next one tries again'));
  }, CALLBACK_SWEEP_INTERVAL_MS);
  timer.unref();

  return {
    worker,
    sweep,
    async close() {
      clearInterval(timer);
      await worker.close();
      connection.disconnect();
    },
  };
}
