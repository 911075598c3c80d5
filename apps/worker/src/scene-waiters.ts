/**
 * Waiters: jobs that got out of the way (delayed) because another job downloads a band they need,
 * prepares their product, or every upstream slot is taken. A waiter registers here right after
 * delaying itself, then re-checks; whoever releases what it waits for wakes it with
 * `Job.promote()` (delayed → waiting) at once, so a waiter resumes within milliseconds, holding
 * no worker slot or connection in between. A waiter whose waker died is woken by its fallback
 * delay instead.
 *
 * **Fair upstream slots.** Slot waiters queue per tenant; a freed slot goes to the waiting job of
 * the tenant that has had the least upstream service (bytes whose download started, counted by
 * {@link SceneWaiters.chargeUpstreamService}); a tenant's own jobs go by BullMQ priority (lower
 * first, none before any), then by registration time. This is start-time fair queuing by bytes:
 * a tenant that starts waiting while others wait has its count raised to just below the least
 * served waiting tenant's, so it goes next once and then takes turns — credit from a long idle
 * period does not let it hold the slots, and one tenant flooding the fleet delays another's job by
 * about one file, not by the flood. While slot waiters exist, a job may take a free slot only with
 * the *baton* of a wake-up (one slot per baton) — fresh jobs queue behind the waiters. Between
 * tenants served alike (a burst of new tenants), the waiter with the largest file goes first:
 * largest-file-first ends a burst sooner than a big file left to stream alone at its end.
 *
 * **A new product's burst.** The job that prepares a product knows what the jobs waiting for it
 * want; when nobody queues for slots it hands the free slots out at once, largest files first,
 * as batons of several slots ({@link SceneWaiters.grantBatons}). Until those batons are taken
 * (or a few seconds pass) the slots count as reserved: jobs without a baton queue, as they do
 * behind waiters.
 *
 * Redis keys (under the queue's prefix):
 * - `<prefix>:<queue>:waiters:scene:<scene_id>` — set of job ids waiting for a product's scene lock;
 * - `<prefix>:<queue>:waiters:band:<scene_id>:<band>` — set of job ids waiting for a band file;
 * - `<prefix>:<queue>:waiters:slot:tenants` — set of tenants with slot waiters;
 * - `<prefix>:<queue>:waiters:slot:tenant:<tenant>` — sorted set of that tenant's slot waiters
 *   (score: priority × 10^13 + registration time in ms);
 * - `<prefix>:<queue>:waiters:slot:service` — hash tenant → upstream bytes served (fairness count);
 * - `<prefix>:<queue>:waiters:slot:bytes` — hash job id → bytes of the largest file it waits to stream;
 * - `<prefix>:<queue>:waiters:slot-baton:<job_id>` — set while a woken slot waiter has not yet
 *   run: `1` (a freed slot, for its largest file) or the JSON array of the band ids a preparer
 *   granted it (a slot each); it passes on what it does not use;
 * - `<prefix>:<queue>:waiters:slot:reserved` — hash job id → slots granted by a product's
 *   preparer and not yet taken; expires {@link RESERVATION_TTL_MS} after the last grant.
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@scenecache/core';
import type { LockMode } from '@scenecache/db';

/** The slots a job was woken for: `slots` of them; with `bands`, for those band files (a burst's grant). */
export interface SlotBaton {
  slots: number;
  bands?: readonly string[];
}

/** No baton. */
export const NO_BATON: SlotBaton = Object.freeze({ slots: 0 });

/** What a waiter waits for. */
export type WaitTarget =
  | { kind: 'scene'; sceneId: string; mode: LockMode }
  | { kind: 'band'; sceneId: string; bandId: string }
  | { kind: 'upstream-slot'; tenantId: string; priority: number; /** Bytes of the largest file the job waits to stream. */ bytes: number }
  | { kind: 'upstream-budget' };

/** The value `download_jobs.waiting_for` records for a target. */
export function waitingForOf(target: WaitTarget): string {
  return target.kind === 'upstream-slot' ? 'upstream_slot' : target.kind === 'upstream-budget' ? 'upstream_budget' : target.kind === 'band' ? 'band_download' : 'product_preparation';
}

/** Waiter keys expire when nobody touches them for a day (a crashed waker leaves no garbage). */
const WAITER_TTL_SECONDS = 86_400;

/**
 * How long slots granted by a preparer stay reserved for their batons (ms): the woken jobs run
 * within milliseconds; one that crashed first must not keep the slots from others for long.
 */
export const RESERVATION_TTL_MS = 3_000;

/** Registration of a slot waiter (KEYS: tenants, tenant queue, service, bytes; ARGV: tenant, job id, score, ttl, bytes). */
const REGISTER_SLOT_WAITER = `
local tenant = ARGV[1]
if redis.call('SISMEMBER', KEYS[1], tenant) == 0 then
  local least = nil
  for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local v = tonumber(redis.call('HGET', KEYS[3], t) or '0')
    if least == nil or v < least then least = v end
  end
  if least ~= nil then
    local mine = tonumber(redis.call('HGET', KEYS[3], tenant) or '0')
    if mine < least - 1 then redis.call('HSET', KEYS[3], tenant, tostring(least - 1)) end
  end
  redis.call('SADD', KEYS[1], tenant)
end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
`;

/**
 * Take the next slot waiter (KEYS: tenants, service, bytes; ARGV: tenant queue key prefix): the
 * first job of the waiting tenant with the least service; between tenants served alike, the one
 * whose first job waits for the largest file, then the one whose first job sorts first (priority,
 * then registration time). Returns {tenant, job id} or nil.
 */
const POP_FAIREST_SLOT_WAITER = `
while true do
  local best = nil
  local bestService, bestBytes, bestHead
  for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local v = tonumber(redis.call('HGET', KEYS[2], t) or '0')
    local first = redis.call('ZRANGE', ARGV[1] .. t, 0, 0, 'WITHSCORES')
    local head = tonumber(first[2] or '0')
    local bytes = tonumber((first[1] and redis.call('HGET', KEYS[3], first[1])) or '0')
    if best == nil or v < bestService or (v == bestService and (bytes > bestBytes or (bytes == bestBytes and head < bestHead))) then
      best = t; bestService = v; bestBytes = bytes; bestHead = head
    end
  end
  if best == nil then return nil end
  local queue = ARGV[1] .. best
  local popped = redis.call('ZPOPMIN', queue, 1)
  if redis.call('ZCARD', queue) == 0 then redis.call('SREM', KEYS[1], best) end
  if popped[1] ~= nil then
    redis.call('HDEL', KEYS[3], popped[1])
    return {best, popped[1]}
  end
end
`;

/**
 * Whether a job of tenant ARGV[2] whose stream just ended may keep its slot for its own next file
 * of ARGV[3] bytes (KEYS: tenants, service, bytes; ARGV: tenant queue key prefix, tenant, bytes):
 * 0 when a waiting job would come first in {@link POP_FAIREST_SLOT_WAITER}'s order — its tenant
 * has had less service, or as much and it waits for a larger file.
 */
const KEEPS_SLOT = `
local mine = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local myBytes = tonumber(ARGV[3])
for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local first = redis.call('ZRANGE', ARGV[1] .. t, 0, 0)
  if first[1] ~= nil then
    local v = tonumber(redis.call('HGET', KEYS[2], t) or '0')
    local bytes = tonumber(redis.call('HGET', KEYS[3], first[1]) or '0')
    if v < mine or (v == mine and bytes > myBytes) then return 0 end
  end
end
return 1
`;

/** BullMQ priorities go up to 2^21; no priority (0) sorts before every priority, as BullMQ runs it. */
const PRIORITY_WEIGHT = 1e13;

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

  private setKey(target: Extract<WaitTarget, { kind: 'scene' | 'band' }>): string {
    if (target.kind === 'scene') return `${this.base}:scene:${target.sceneId}`;
    return `${this.base}:band:${target.sceneId}:${target.bandId}`;
  }

  private get slotTenantsKey(): string {
    return `${this.base}:slot:tenants`;
  }

  private get slotServiceKey(): string {
    return `${this.base}:slot:service`;
  }

  private get slotReservedKey(): string {
    return `${this.base}:slot:reserved`;
  }

  private get slotBytesKey(): string {
    return `${this.base}:slot:bytes`;
  }

  private slotQueueKey(tenantId: string): string {
    return `${this.base}:slot:tenant:${tenantId}`;
  }

  /**
   * Register `jobId` as waiting for `target`. Nothing is registered for `upstream-budget`: nobody
   * wakes a budget waiter; it checks the 30-day window again when its delay ends.
   */
  async register(target: WaitTarget, jobId: string): Promise<void> {
    if (target.kind === 'upstream-budget') return;
    if (target.kind === 'upstream-slot') {
      const score = target.priority * PRIORITY_WEIGHT + Date.now();
      await this.redis.eval(REGISTER_SLOT_WAITER, 4, this.slotTenantsKey, this.slotQueueKey(target.tenantId), this.slotServiceKey, this.slotBytesKey, target.tenantId, jobId, String(score), String(WAITER_TTL_SECONDS), String(target.bytes));
      return;
    }
    const key = this.setKey(target);
    await this.redis.multi().sadd(key, jobId).expire(key, WAITER_TTL_SECONDS).exec();
  }

  /**
   * Wake the jobs waiting for `target`: take the registered ids (atomically, so two wakers don't
   * both promote) and promote each delayed job; a job that is no longer delayed (it woke itself,
   * or was never delayed) is skipped. Returns how many jobs were promoted.
   *
   * Upstream-slot waiters are woken one per freed slot (`limit`), fairest first (see the module's
   * doc), each with the slot's baton ({@link takeSlotBaton}): waking all of them for one slot
   * would pull every waiter into a worker slot and a lock connection, only for all but one to be
   * delayed again. Ids whose job is no longer delayed are dropped and the next one is taken.
   */
  async wake(target: WaitTarget, limit = Number.POSITIVE_INFINITY): Promise<number> {
    if (target.kind === 'upstream-budget') return 0;
    if (target.kind === 'upstream-slot') return this.wakeSlotWaiters(limit);
    const key = this.setKey(target);
    const replies = await this.redis.multi().smembers(key).del(key).exec();
    const ids = (replies?.[0]?.[1] ?? []) as string[];
    if (!ids || ids.length === 0) return 0;
    const promoted = await Promise.all(ids.map((id) => this.promote(id)));
    return promoted.filter(Boolean).length;
  }

  /** Wake up to `limit` slot waiters, fairest first (see {@link wake}). */
  async wakeSlotWaiters(limit = 1): Promise<number> {
    let promoted = 0;
    while (promoted < limit) {
      const next = (await this.redis.eval(POP_FAIREST_SLOT_WAITER, 3, this.slotTenantsKey, this.slotServiceKey, this.slotBytesKey, `${this.base}:slot:tenant:`)) as [string, string] | null;
      if (!next) break;
      const id = next[1];
      // The baton is set before the promote: the woken job may run at once.
      await this.redis.set(this.batonKey(id), '1', 'EX', WAITER_TTL_SECONDS);
      if (await this.promote(id)) promoted++;
      else await this.redis.del(this.batonKey(id));
    }
    return promoted;
  }

  /**
   * Whether a job of `tenantId` whose stream just ended may keep its slot for its own next file of
   * `bytes`, rather than release it to the waiters: no waiting job comes before it in the order a
   * freed slot is handed out in (least-served tenant first, then the largest file).
   */
  async keepsSlot(tenantId: string, bytes: number): Promise<boolean> {
    return (await this.redis.eval(KEEPS_SLOT, 3, this.slotTenantsKey, this.slotServiceKey, this.slotBytesKey, `${this.base}:slot:tenant:`, tenantId, String(bytes))) === 1;
  }

  /**
   * Whether upstream slots are contended right now: jobs wait for one, or slots are reserved for
   * the batons of a product's burst. Then a job without a baton queues.
   */
  async slotsContended(): Promise<boolean> {
    const replies = await this.redis.multi().scard(this.slotTenantsKey).exists(this.slotReservedKey).exec();
    return Number(replies?.[0]?.[1] ?? 0) > 0 || Number(replies?.[1]?.[1] ?? 0) > 0;
  }

  /** Drop `jobId`'s reservation of slots (its claim has taken what it could). */
  async releaseReservation(jobId: string): Promise<void> {
    await this.redis.hdel(this.slotReservedKey, jobId);
  }

  /** Whether slots are reserved for batons a preparer granted that are not yet taken. */
  async slotsReserved(): Promise<boolean> {
    return (await this.redis.exists(this.slotReservedKey)) > 0;
  }

  /**
   * The jobs waiting for `sceneId`'s scene lock (a product being prepared), with their payloads
   * as queued (unvalidated). At most `limit` of them; jobs gone from the queue are left out.
   */
  async sceneWaiterPayloads(sceneId: string, limit = 200): Promise<Array<{ jobId: string; data: unknown }>> {
    const ids = (await this.redis.smembers(this.setKey({ kind: 'scene', sceneId, mode: 'shared' }))).slice(0, limit);
    const jobs = await Promise.all(ids.map((id) => Job.fromId(this.queue, id)));
    return jobs.flatMap((job, i) => (job ? [{ jobId: ids[i]!, data: job.data as unknown }] : []));
  }

  /**
   * Grant batons (job id → the band ids it is to stream, a slot each) to jobs about to be woken,
   * and reserve the slots for them ({@link RESERVATION_TTL_MS}). Set before the wake-up: the
   * woken job may run at once.
   */
  async grantBatons(grants: ReadonlyMap<string, readonly string[]>): Promise<void> {
    if (grants.size === 0) return;
    const tx = this.redis.multi();
    for (const [jobId, bands] of grants) {
      tx.set(this.batonKey(jobId), JSON.stringify(bands), 'EX', WAITER_TTL_SECONDS);
      tx.hset(this.slotReservedKey, jobId, String(bands.length));
    }
    tx.pexpire(this.slotReservedKey, RESERVATION_TTL_MS);
    await tx.exec();
  }

  /**
   * Count `bytes` of upstream service to `tenantId` (a file download it started): the fairness
   * measure of slot hand-out. Bytes, as a float in Redis.
   */
  async chargeUpstreamService(tenantId: string, bytes: number): Promise<void> {
    await this.redis.multi().hincrbyfloat(this.slotServiceKey, tenantId, bytes).expire(this.slotServiceKey, WAITER_TTL_SECONDS).exec();
  }

  /**
   * The upstream slots `jobId` was woken for ({@link NO_BATON}: none), clearing the mark. The
   * slots stay reserved for it until {@link releaseReservation} (after its claim). A job that took the baton and then does not use all of its slots (its bands
   * were downloaded meanwhile, another job downloads them, it failed) must pass the rest on with
   * {@link wakeSlotWaiters}.
   */
  async takeSlotBaton(jobId: string): Promise<SlotBaton> {
    const value = await this.redis.getdel(this.batonKey(jobId));
    if (typeof value !== 'string') return NO_BATON;
    if (value.startsWith('[')) {
      try {
        const bands = (JSON.parse(value) as unknown[]).filter((b): b is string => typeof b === 'string');
        return { slots: bands.length, bands };
      } catch {
        return { slots: 1 };
      }
    }
    return { slots: 1 };
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
