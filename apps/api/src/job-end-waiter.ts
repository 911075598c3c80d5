/**
 * Long-polls (`GET /v1/downloads/{id}?wait=SECONDS`) wait here for a job to end without polling
 * Postgres and without holding a database connection: whoever finalizes a job's row (the worker's
 * record step, the API cancelling a queued job) publishes the job id on the Redis channel
 * `jobEndedChannel(QUEUE_PREFIX)`. One subscriber connection per API process listens (opened at
 * the first wait); each wait registers for its job id, then re-checks the row once subscribed, so
 * an end published before the subscription is not missed. Pub/sub delivers at most once: when the
 * subscriber reconnects after a drop, every wait re-checks its row again. When Redis cannot be
 * subscribed to, a wait falls back to re-reading the row every {@link FALLBACK_POLL_MS}.
 *
 * {@link JobEndWaiter.close} (the app closing) ends every wait at once.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '@scenecache/core';

/** Re-read interval (ms) of a wait while the notification channel cannot be subscribed to. */
export const FALLBACK_POLL_MS = 1_000;

/** How a wait ended: the job ended, the time ran out, or the wait was aborted (shutdown, client gone). */
export type WaitOutcome = 'ended' | 'timeout' | 'aborted';

/** Options of {@link JobEndWaiter}. */
export interface JobEndWaiterOptions {
  /** Opens the subscriber connection (e.g. the producer connection's `duplicate()`), at the first wait. */
  connect(): Redis;
  /** `jobEndedChannel(QUEUE_PREFIX)`. */
  channel: string;
  logger: Logger;
}

interface Waiter {
  /** Re-reads the row: whether the job has ended. */
  recheck(): Promise<boolean>;
  settle(outcome: WaitOutcome): void;
}

/** One per app: the subscriber connection and the waits on it, by job id. */
export class JobEndWaiter {
  private redis: Redis | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly waiters = new Map<string, Set<Waiter>>();
  private closed = false;

  constructor(private readonly options: JobEndWaiterOptions) {}

  /** Waits in progress (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  /**
   * Wait until job `jobId` ends, at most `timeoutMs`.
   *
   * @param isEnded - reads the job's row (one query, no connection held afterwards): whether it
   *   has ended. Called once subscribed, after a reconnect, and in the polling fallback; a failure
   *   counts as "not ended" (the wait goes on; the caller's final read reports the error).
   * @param signal - aborts the wait (client gone, app closing).
   */
  async wait(jobId: string, timeoutMs: number, signal: AbortSignal, isEnded: () => Promise<boolean>): Promise<WaitOutcome> {
    if (this.closed || signal.aborted) return 'aborted';
    const recheck = () => isEnded().catch((err: unknown) => {
      this.options.logger.debug({ err, jobId }, 'long-poll re-check failed');
      return false;
    });
    let settle!: (outcome: WaitOutcome) => void;
    const outcome = new Promise<WaitOutcome>((resolve) => (settle = resolve));
    const waiter: Waiter = { recheck, settle };
    // Registered before subscribing: a message that arrives once we are subscribed finds us.
    const set = this.waiters.get(jobId) ?? new Set<Waiter>();
    set.add(waiter);
    this.waiters.set(jobId, set);
    const timer = setTimeout(() => settle('timeout'), timeoutMs);
    const onAbort = () => settle('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    let poll: NodeJS.Timeout | undefined;
    try {
      try {
        await this.subscribe();
        if (await recheck()) settle('ended');
      } catch (err) {
        this.options.logger.warn({ err, jobId }, `job end notifications unavailable; long-poll re-reads the job every ${FALLBACK_POLL_MS} ms`);
        const tick = async () => {
          if (await recheck()) settle('ended');
          else poll = setTimeout(() => void tick(), FALLBACK_POLL_MS);
        };
        void tick();
      }
      return await outcome;
    } finally {
      clearTimeout(timer);
      clearTimeout(poll);
      signal.removeEventListener('abort', onAbort);
      set.delete(waiter);
      if (set.size === 0 && this.waiters.get(jobId) === set) this.waiters.delete(jobId);
    }
  }

  /** SUBSCRIBE once (at the first wait); a failed attempt is forgotten so the next wait tries again. */
  private subscribe(): Promise<void> {
    this.subscribed ??= (async () => {
      const redis = (this.redis ??= this.open());
      await redis.subscribe(this.options.channel);
    })().catch((err: unknown) => {
      this.subscribed = undefined;
      throw err;
    });
    return this.subscribed;
  }

  private open(): Redis {
    const redis = this.options.connect();
    let ready = false;
    redis.on('message', (channel: string, jobId: string) => {
      if (channel !== this.options.channel) return;
      for (const waiter of this.waiters.get(jobId) ?? []) waiter.settle('ended');
    });
    redis.on('error', (err: Error) => this.options.logger.debug({ err }, 'job end subscriber: Redis connection error'));
    // ioredis subscribes again on reconnect (autoResubscribe); what was published while we were
    // away is lost, so every wait reads its row again.
    redis.on('ready', () => {
      if (!ready) {
        ready = true;
        return;
      }
      this.options.logger.info({ waits: this.size }, 'job end subscriber reconnected; re-checking the waiting jobs');
      for (const set of this.waiters.values()) {
        for (const waiter of set) void waiter.recheck().then((ended) => ended && waiter.settle('ended'));
      }
    });
    return redis;
  }

  /** End every wait (`aborted`) and close the subscriber connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const set of this.waiters.values()) for (const waiter of set) waiter.settle('aborted');
    this.redis?.disconnect();
  }
}
