/**
 * Waiters: jobs that got out of the way (delayed) because another job holds their scene lock or
 * every upstream slot is taken. A waiter registers here right after delaying itself, then
 * re-checks; whoever releases what it waits for wakes it with `Job.promote()` (delayed → waiting)
 * at once, so a waiter resumes within milliseconds of the download it waits for being
 * registered, holding no worker slot or connection in between. A waiter whose holder died is
 * woken by its fallback delay instead.
 *
 * Redis keys (under the queue's prefix):
 * - `<prefix>:<queue>:waiters:scene:<scene_id>` — set of job ids waiting for that scene's lock;
 * - `<prefix>:<queue>:waiters:upstream-slot` — sorted set (score = registration time, ms) of job
 *   ids waiting for any upstream slot; woken oldest first, one per free slot;
 * - `<prefix>:<queue>:waiters:slot-baton:<job_id>` — set while a woken slot waiter has not yet
 *   run: it passes the wake-up on if it does not take the slot.
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@scenecache/core';

/** What a waiter waits for. */
export type WaitTarget = { kind: 'scene'; sceneId: string } | { kind: 'upstream-slot' };

/** Waiter keys expire when nobody touches them for a day (a crashed waker leaves no garbage). */
const WAITER_TTL_SECONDS = 86_400;

export class SceneWaiters {
  private readonly base: string;

  constructor(
    private readonly redis: Redis,
    private readonly queue: Queue,
    queuePrefix: string,
    private readonly logger: Logger,
  ) {
    this.base = `${queuePrefix}:${queue.name}:waiters`;
  }

  private key(target: WaitTarget): string {
    return target.kind === 'scene' ? `${this.base}:scene:${target.sceneId}` : `${this.base}:upstream-slot`;
  }

  /** Register `jobId` as waiting for `target`. */
  async register(target: WaitTarget, jobId: string): Promise<void> {
    const key = this.key(target);
    const multi = this.redis.multi();
    if (target.kind === 'scene') multi.sadd(key, jobId);
    else multi.zadd(key, 'NX', Date.now(), jobId);
    await multi.expire(key, WAITER_TTL_SECONDS).exec();
  }

  /**
   * Wake every job waiting for `target`: take the registered ids (atomically, so two wakers don't
   * both promote) and promote each delayed job. A job that is no longer delayed (it woke itself,
   * or was never delayed) is skipped. Returns how many jobs were promoted.
   *
   * Upstream-slot waiters are woken oldest first, at most `limit` of them (one per freed slot):
   * waking all of them for one free slot would pull every waiter into a worker slot and a lock
   * connection, only for all but one to be delayed again. Ids whose job is no longer delayed are
   * dropped and the next one is taken. A woken slot waiter holds the slot's *baton* (see
   * {@link takeSlotBaton}): if it turns out not to need the slot, it passes the wake-up on, so a
   * freed slot never sits idle until the fallback delay.
   */
  async wake(target: WaitTarget, limit = Number.POSITIVE_INFINITY): Promise<number> {
    const key = this.key(target);
    if (target.kind === 'upstream-slot') {
      let promoted = 0;
      while (promoted < limit) {
        const [id] = await this.redis.zpopmin(key, 1);
        if (id === undefined) break;
        // The baton is set before the promote: the woken job may run at once.
        await this.redis.set(this.batonKey(id), '1', 'EX', WAITER_TTL_SECONDS);
        if (await this.promote(id)) promoted++;
        else await this.redis.del(this.batonKey(id));
      }
      return promoted;
    }
    const replies = await this.redis.multi().smembers(key).del(key).exec();
    const ids = (replies?.[0]?.[1] ?? []) as string[];
    if (!ids || ids.length === 0) return 0;
    const promoted = await Promise.all(ids.map((id) => this.promote(id)));
    return promoted.filter(Boolean).length;
  }

  /**
   * Whether `jobId` was woken for a freed upstream slot (and clear the mark). A job that took the
   * baton and then does not take a slot (its bands were downloaded meanwhile, its scene is
   * locked by another job, it failed) must call `wake({kind: 'upstream-slot'}, 1)` to pass it on.
   */
  async takeSlotBaton(jobId: string): Promise<boolean> {
    return (await this.redis.del(this.batonKey(jobId))) === 1;
  }

  private batonKey(jobId: string): string {
    return `${this.base}:slot-baton:${jobId}`;
  }

  /** Promote one job if it is delayed; `false` when it is not (or no longer exists). */
  async promote(jobId: string): Promise<boolean> {
    try {
      const job = await Job.fromId(this.queue, jobId);
      if (!job) return false;
      await job.promote();
      return true;
    } catch (err) {
      // "Job is not in the delayed state": it already resumed. Anything else is worth a debug line.
      this.logger.debug({ err, jobId }, 'waiter not promoted');
      return false;
    }
  }
}
