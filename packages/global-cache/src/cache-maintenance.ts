/**
 * The global cache's scheduled maintenance (`GLOBAL_CACHE_MAX_BYTES`, `CACHE_UNUSED_TTL_DAYS`,
 * `CACHE_INVALID_RETENTION_DAYS`): a cache that manages itself. One run does, in order:
 *
 * 1. **Incomplete multipart uploads** in the global bucket initiated more than a day ago are aborted
 *    (a band upload takes minutes; these are uploads of killed workers). Where the store does not
 *    list them (s3rver answers 501), the run says so (`supported: false`): production buckets also
 *    carry an `AbortIncompleteMultipartUpload` lifecycle rule.
 * 2. **Invalid entries** invalidated more than `CACHE_INVALID_RETENTION_DAYS` ago are deleted (the
 *    seed's "is_valid = false AND updated_at < now() - 30 days"), with the objects they describe.
 * 3. **Expiry**: valid products not used for `CACHE_UNUSED_TTL_DAYS` are deleted with their objects.
 * 4. **Eviction**: while the bytes the table registers exceed `GLOBAL_CACHE_MAX_BYTES`, products are
 *    deleted until they are at or below 90 % of it — invalid rows first (they serve nothing), then
 *    valid products least recently used first.
 * 5. **Reconciliation** of the bucket listing under `sentinel-2/` (`CACHE_KEY_PREFIX`: other keys of the
 *    bucket are never touched) with the table: objects under a product's prefix that
 *    no row describes and older than the grace period (a day: an upload stored but not yet
 *    registered is younger) are deleted; band entries whose object vanished or is truncated are
 *    dropped, and a row left with no band is marked invalid.
 *
 * "Used" is a product's last use (`LAST_USED_SQL` of @scenecache/db): the latest of its row's
 * creation, a band registered into it, and a job served from it (`last_accessed_at`).
 *
 * **Removed means gone**: an evicted, expired or cleaned-up product's row is deleted and the objects
 * it describes too (objects left under its prefix that no row describes are orphans: step 5 of a
 * later run deletes them). The next job for it finds no row and downloads what it asks for
 * (`cache_status: downloaded`); `download_count` starts again at 0.
 *
 * **Locks**: every change to a product happens in a transaction holding its scene lock (`scene:<id>`,
 * transaction level, try only, many products per statement: `tryLockScenesForTransaction`), which
 * conflicts with the shared scene lock a downloading job holds — a product being downloaded is
 * never touched; it is skipped (`skipped`) and handled by the next run. Each row is re-checked under
 * the lock (still unused since it was read, still invalid and old enough) and deleted, then its
 * objects (DeleteObjects, 1000 keys per request); the transaction commits after S3 answered, so an
 * S3 failure rolls the rows back (a later read drops entries whose objects are gone). A job that
 * read a product as cached just before it was evicted finds its copy source gone and runs its
 * pipeline again, downloading the product (the worker's fan-out).
 *
 * **One run at a time**, fleet-wide: a run holds the session advisory lock `cache-maintenance` on
 * one pooled connection for its duration; a run that finds it held does nothing (`ran: false`).
 * A dry run takes no lock and changes nothing: it reports what a run would do now (the
 * reconciliation's counts without the re-check under the lock).
 *
 * Tenant copies are never touched: only the global bucket is listed and deleted from.
 */
import { sql, type Kysely } from 'kysely';
import { CACHE_KEY_PREFIX, type Logger, type Settings } from '@scenecache/core';
import {
  deleteEntriesUnusedSince,
  deleteExpiredInvalidEntries,
  dropVanishedBandEntries,
  findEntriesByStoragePaths,
  getCacheUsage,
  listEntriesByScene,
  listExpiredInvalidEntries,
  listLeastRecentlyUsed,
  registeredCacheBytes,
  tryLockScenesForTransaction,
  type CacheEntryRef,
  type CacheUsage,
  type CachedBand,
  type DB,
  type LastUsedPosition,
  type Queryable,
} from '@scenecache/db';
import type { ListedObject, ObjectStore } from '@scenecache/storage';

/** The advisory lock (session level) a maintenance run holds: one run at a time, fleet-wide. */
export const CACHE_MAINTENANCE_LOCK_NAME = 'cache-maintenance';

/** Eviction stops at this share of `GLOBAL_CACHE_MAX_BYTES`. */
export const EVICTION_TARGET_RATIO = 0.9;

/** Orphans younger than this are kept (ms): an object stored and not yet registered is one. @defaultValue one day */
export const ORPHAN_GRACE_MS = 86_400_000;

/** Incomplete multipart uploads initiated longer ago than this are aborted (ms). @defaultValue one day */
export const MULTIPART_MAX_AGE_MS = 86_400_000;

/** Rows handled per transaction (and read per page). */
export const MAINTENANCE_BATCH_SIZE = 200;

/** Why a product was removed. */
export type RemovalReason = 'invalid' | 'expired' | 'evicted';

/** Options of {@link CacheMaintenance}. */
export interface CacheMaintenanceOptions {
  db: Kysely<DB>;
  store: ObjectStore;
  /** The global bucket (the only one listed and deleted from). */
  bucket: string;
  /** `GLOBAL_CACHE_MAX_BYTES`; `undefined`: no budget, no eviction. */
  maxBytes: number | undefined;
  /** `CACHE_UNUSED_TTL_DAYS`; `undefined`: products never expire. */
  unusedTtlDays: number | undefined;
  /** `CACHE_INVALID_RETENTION_DAYS`. */
  invalidRetentionDays: number;
  logger: Logger;
  /** @defaultValue {@link ORPHAN_GRACE_MS} */
  orphanGraceMs?: number;
  /** @defaultValue {@link MULTIPART_MAX_AGE_MS} */
  multipartMaxAgeMs?: number;
  /** @defaultValue {@link MAINTENANCE_BATCH_SIZE} */
  batchSize?: number;
  /** Most scene ids a report lists per action. @defaultValue 100 */
  listCap?: number;
  /** Called after each committed batch (metrics). */
  onRemoved?: (reason: RemovalReason, removed: { products: number; objects: number; bytes: number }) => void;
  /** Called after orphans were deleted (metrics). */
  onOrphansDeleted?: (objects: number, bytes: number) => void;
  /** Called once a run has listed the whole bucket prefix (objects, bytes as listed; metrics). */
  onBucketListed?: (objects: number, bytes: number) => void;
}

/** What a process counts of its maintenance runs (its Prometheus metrics: the API's, a worker's). */
export interface CacheMaintenanceCounters {
  cacheProductsRemoved(reason: RemovalReason, products: number, bytes: number): void;
  cacheOrphansRemoved(objects: number): void;
  /** The listed size of the bucket (objects, bytes); only workers export it. */
  globalBucketListed?(objects: number, bytes: number): void;
}

/**
 * The maintenance as the settings configure it (`GLOBAL_BUCKET`, `GLOBAL_CACHE_MAX_BYTES`,
 * `CACHE_UNUSED_TTL_DAYS`, `CACHE_INVALID_RETENTION_DAYS`), counting into `metrics` — what the
 * workers schedule and `POST /v1/admin/cache/maintenance` runs.
 */
export function createCacheMaintenance(
  settings: Pick<Settings, 'globalBucket' | 'globalCacheMaxBytes' | 'cacheUnusedTtlDays' | 'cacheInvalidRetentionDays'>,
  deps: { db: Kysely<DB>; store: ObjectStore; logger: Logger; metrics?: CacheMaintenanceCounters | undefined },
): CacheMaintenance {
  const { metrics } = deps;
  return new CacheMaintenance({
    db: deps.db,
    store: deps.store,
    bucket: settings.globalBucket,
    maxBytes: settings.globalCacheMaxBytes,
    unusedTtlDays: settings.cacheUnusedTtlDays,
    invalidRetentionDays: settings.cacheInvalidRetentionDays,
    logger: deps.logger,
    onRemoved: (reason, removed) => metrics?.cacheProductsRemoved(reason, removed.products, removed.bytes),
    onOrphansDeleted: (objects) => metrics?.cacheOrphansRemoved(objects),
    onBucketListed: (objects, bytes) => metrics?.globalBucketListed?.(objects, bytes),
  });
}

/** Products removed by one action of a run. */
export interface RemovalSummary {
  products: number;
  /** Bytes the deleted rows described. */
  bytes: number;
  /** Objects deleted (the rows' band objects). */
  objects: number;
  /** Scene ids, at most `listCap`. */
  sceneIds: string[];
}

/** What a run did (or, dry, would do). Bytes are bytes; times ms. */
export interface MaintenanceReport {
  dryRun: boolean;
  /** `false`: another run held the maintenance lock, this one did nothing. */
  ran: boolean;
  startedAt: Date;
  durationMs: number;
  /** `GLOBAL_CACHE_MAX_BYTES`, or `null`. */
  budgetBytes: number | null;
  usageBefore: CacheUsage;
  /** After the run (dry run: as it would be, from the counts). */
  usageAfter: CacheUsage;
  multipartUploads: { aborted: number; supported: boolean };
  invalidRemoved: RemovalSummary;
  expired: RemovalSummary;
  evicted: RemovalSummary;
  orphans: { objects: number; bytes: number };
  vanished: { bands: number; productsInvalidated: number; sceneIds: string[] };
  /**
   * The global bucket under `sentinel-2/` as the reconciliation listed it (objects, bytes) — the
   * bucket's real size, orphans included, after the run's deletions; `null` when the run stopped
   * before listing it all (or did not run).
   */
  bucketListing: { objects: number; bytes: number } | null;
  /** Products skipped because a job held their scene lock (retried by the next run), at most `listCap`. */
  skipped: string[];
  /** Stopped early by the signal (shutdown). */
  aborted: boolean;
}

const emptyRemoval = (): RemovalSummary => ({ products: 0, bytes: 0, objects: 0, sceneIds: [] });

/** The path part of a key (`a/b/c` → `a/b`). */
function prefixOf(key: string): string {
  const slash = key.lastIndexOf('/');
  return slash < 0 ? '' : key.slice(0, slash);
}

/** Runs the global cache's maintenance (see the module's doc). One instance per process. */
export class CacheMaintenance {
  private readonly o: Required<Omit<CacheMaintenanceOptions, 'maxBytes' | 'unusedTtlDays' | 'onRemoved' | 'onOrphansDeleted' | 'onBucketListed'>> &
    Pick<CacheMaintenanceOptions, 'maxBytes' | 'unusedTtlDays' | 'onRemoved' | 'onOrphansDeleted' | 'onBucketListed'>;

  constructor(options: CacheMaintenanceOptions) {
    this.o = { orphanGraceMs: ORPHAN_GRACE_MS, multipartMaxAgeMs: MULTIPART_MAX_AGE_MS, batchSize: MAINTENANCE_BATCH_SIZE, listCap: 100, ...options };
  }

  /**
   * One maintenance run (see the module's doc).
   *
   * @param options.dryRun - report only; no lock, no change.
   * @param options.signal - stops the run between batches (`aborted: true`).
   * @throws pg errors and `StorageError` (S3) — batches committed before stay done; the next run
   *   goes on from there.
   */
  async run(options: { dryRun?: boolean; signal?: AbortSignal; log?: Logger } = {}): Promise<MaintenanceReport> {
    const dryRun = options.dryRun ?? false;
    const log = options.log ?? this.o.logger;
    const startedAt = new Date();
    const usageBefore = await getCacheUsage(this.o.db);
    const report: MaintenanceReport = {
      dryRun,
      ran: true,
      startedAt,
      durationMs: 0,
      budgetBytes: this.o.maxBytes ?? null,
      usageBefore,
      usageAfter: usageBefore,
      multipartUploads: { aborted: 0, supported: true },
      invalidRemoved: emptyRemoval(),
      expired: emptyRemoval(),
      evicted: emptyRemoval(),
      orphans: { objects: 0, bytes: 0 },
      vanished: { bands: 0, productsInvalidated: 0, sceneIds: [] },
      bucketListing: null,
      skipped: [],
      aborted: false,
    };
    const steps = async () => {
      const run = new Run(this.o, report, dryRun, options.signal);
      await run.all();
    };
    if (dryRun) await steps();
    else {
      const ran = await this.o.db.connection().execute(async (conn) => {
        const got = await sql<{ ok: boolean }>`SELECT pg_try_advisory_lock(hashtextextended(${CACHE_MAINTENANCE_LOCK_NAME}, 0)) AS ok`.execute(conn);
        if (got.rows[0]?.ok !== true) return false;
        try {
          await steps();
        } finally {
          await sql`SELECT pg_advisory_unlock(hashtextextended(${CACHE_MAINTENANCE_LOCK_NAME}, 0))`.execute(conn);
        }
        return true;
      });
      report.ran = ran;
    }
    report.usageAfter = dryRun ? projectedUsage(report) : await getCacheUsage(this.o.db);
    report.durationMs = Date.now() - startedAt.getTime();
    const summary = {
      dryRun,
      ran: report.ran,
      durationMs: report.durationMs,
      bytesBefore: usageBefore.bytes,
      bytesAfter: report.usageAfter.bytes,
      budgetBytes: report.budgetBytes,
      invalidRemoved: report.invalidRemoved.products,
      expired: report.expired.products,
      evicted: report.evicted.products,
      orphansDeleted: report.orphans.objects,
      vanishedBands: report.vanished.bands,
      multipartAborted: report.multipartUploads.aborted,
      skipped: report.skipped.length,
    };
    if (!report.ran) log.info(summary, 'cache maintenance: another run holds the lock; skipped');
    else log.info(summary, dryRun ? 'cache maintenance (dry run)' : 'cache maintenance done');
    return report;
  }
}

/** The usage a dry run's counts leave. */
function projectedUsage(report: MaintenanceReport): CacheUsage {
  const removed = [report.invalidRemoved, report.expired, report.evicted];
  const bytes = removed.reduce((sum, r) => sum + r.bytes, 0);
  return {
    ...report.usageBefore,
    bytes: report.usageBefore.bytes - bytes,
    objects: report.usageBefore.objects - removed.reduce((sum, r) => sum + r.objects, 0),
    products: report.usageBefore.products - removed.reduce((sum, r) => sum + r.products, 0),
  };
}

type Options = CacheMaintenance['o'];

/** The state of one run. */
class Run {
  /** Products removed (or, dry, counted) by an earlier step of this run. */
  private readonly removed = new Set<string>();
  private readonly skipped = new Set<string>();

  constructor(
    private readonly o: Options,
    private readonly report: MaintenanceReport,
    private readonly dryRun: boolean,
    private readonly signal: AbortSignal | undefined,
  ) {}

  private get stopped(): boolean {
    if (this.signal?.aborted) this.report.aborted = true;
    return this.report.aborted;
  }

  async all(): Promise<void> {
    await this.abortStaleUploads();
    if (!this.stopped) await this.removeInvalid(this.o.invalidRetentionDays, 'invalid', Infinity);
    if (!this.stopped && this.o.unusedTtlDays !== undefined) await this.removeUnused({ usedBefore: new Date(Date.now() - this.o.unusedTtlDays * 86_400_000), reason: 'expired', bytesToFree: Infinity });
    if (!this.stopped && this.o.maxBytes !== undefined) await this.evict(this.o.maxBytes);
    if (!this.stopped) await this.reconcile();
    this.report.skipped = [...this.skipped].slice(0, this.o.listCap);
  }

  private async abortStaleUploads(): Promise<void> {
    const uploads = await this.o.store.listMultipartUploads(this.o.bucket);
    if (uploads === undefined) {
      this.report.multipartUploads.supported = false;
      return;
    }
    const before = Date.now() - this.o.multipartMaxAgeMs;
    for (const u of uploads) {
      if (u.initiated === undefined || u.initiated.getTime() >= before) continue;
      if (!this.dryRun) await this.o.store.abortMultipartUpload(this.o.bucket, u.key, u.uploadId);
      this.report.multipartUploads.aborted += 1;
    }
  }

  /** Invalid rows invalidated more than `olderThanDays` ago, oldest first, until `bytesToFree` is freed. @returns bytes freed. */
  private async removeInvalid(olderThanDays: number, reason: RemovalReason, bytesToFree: number): Promise<number> {
    let freed = 0;
    let after: { updated: string; sceneId: string } | undefined;
    while (freed < bytesToFree && !this.stopped) {
      const page = await listExpiredInvalidEntries(this.o.db, { olderThanDays, limit: this.o.batchSize, after });
      if (page.length === 0) break;
      const last = page.at(-1)!;
      after = { updated: last.exact.updated, sceneId: last.sceneId };
      const wanted = takeUntil(page.filter((e) => !this.removed.has(e.sceneId)), bytesToFree - freed);
      freed += await this.remove(wanted, reason, (trx, ids) => deleteExpiredInvalidEntries(trx, ids, olderThanDays));
      if (page.length < this.o.batchSize) break;
    }
    return freed;
  }

  /** Valid products least recently used first (used before `usedBefore`, if given), until `bytesToFree` is freed. @returns bytes freed. */
  private async removeUnused(options: { usedBefore?: Date; reason: RemovalReason; bytesToFree: number }): Promise<number> {
    let freed = 0;
    let after: LastUsedPosition | undefined;
    while (freed < options.bytesToFree && !this.stopped) {
      const page = await listLeastRecentlyUsed(this.o.db, { after, usedBefore: options.usedBefore, limit: this.o.batchSize });
      if (page.length === 0) break;
      const last = page.at(-1)!;
      after = { lastUsed: last.exact.lastUsed, sceneId: last.sceneId };
      const wanted = takeUntil(page.filter((e) => !this.removed.has(e.sceneId)), options.bytesToFree - freed);
      const read = new Map(wanted.map((e) => [e.sceneId, e]));
      freed += await this.remove(wanted, options.reason, (trx, ids) => deleteEntriesUnusedSince(trx, ids.map((id) => read.get(id)!)));
      if (page.length < this.o.batchSize) break;
    }
    return freed;
  }

  /** Free the bytes above 90 % of the budget: invalid rows first, then least recently used products. */
  private async evict(maxBytes: number): Promise<void> {
    const bytes = this.dryRun ? projectedUsage(this.report).bytes : await registeredCacheBytes(this.o.db);
    const excess = bytes - Math.floor(maxBytes * EVICTION_TARGET_RATIO);
    if (bytes <= maxBytes || excess <= 0) return;
    const freed = await this.removeInvalid(0, 'evicted', excess);
    if (freed < excess) await this.removeUnused({ reason: 'evicted', bytesToFree: excess - freed });
  }

  /**
   * Remove `entries` (read before): lock their products, delete the rows that still qualify
   * (`deleteRows`), delete the objects they describe, commit. Dry: count them.
   * @returns bytes of the rows removed.
   */
  private async remove(entries: CacheEntryRef[], reason: RemovalReason, deleteRows: (trx: Queryable, sceneIds: string[]) => Promise<CacheEntryRef[]>): Promise<number> {
    if (entries.length === 0) return 0;
    let deleted: CacheEntryRef[];
    if (this.dryRun) deleted = entries;
    else {
      deleted = await this.o.db.transaction().execute(async (trx) => {
        const { locked, busy } = await tryLockScenesForTransaction(trx, entries.map((e) => e.sceneId));
        for (const id of busy) this.skipped.add(id);
        const rows = await deleteRows(trx, locked);
        const byBucket = new Map<string, string[]>();
        for (const row of rows) {
          const keys = byBucket.get(row.storageBucket) ?? [];
          keys.push(...Object.values(row.bands).map((b) => b.key));
          byBucket.set(row.storageBucket, keys);
        }
        for (const [bucket, keys] of byBucket) await this.o.store.deleteObjects(bucket, keys);
        return rows;
      });
    }
    const summary = reason === 'invalid' ? this.report.invalidRemoved : reason === 'expired' ? this.report.expired : this.report.evicted;
    const objects = deleted.reduce((sum, r) => sum + Object.keys(r.bands).length, 0);
    const bytes = deleted.reduce((sum, r) => sum + r.totalBytes, 0);
    summary.products += deleted.length;
    summary.bytes += bytes;
    summary.objects += objects;
    for (const row of deleted) {
      this.removed.add(row.sceneId);
      this.skipped.delete(row.sceneId);
      if (summary.sceneIds.length < this.o.listCap) summary.sceneIds.push(row.sceneId);
    }
    if (!this.dryRun && deleted.length > 0) this.o.onRemoved?.(reason, { products: deleted.length, objects, bytes });
    return bytes;
  }

  /**
   * Step 5: list the bucket prefix by prefix (S3 lists keys in order, so one product's objects come
   * together), compare each product's objects with its row, then find rows none of whose objects
   * was listed.
   */
  private async reconcile(): Promise<void> {
    const seen = new Set<string>();
    const listed = { objects: 0, bytes: 0 };
    let pending: { path: string; objects: ListedObject[] }[] = [];
    for await (const page of this.o.store.listObjectPages(this.o.bucket, CACHE_KEY_PREFIX)) {
      for (const object of page) {
        listed.objects += 1;
        listed.bytes += object.size;
        const path = prefixOf(object.key);
        const last = pending.at(-1);
        if (last?.path === path) last.objects.push(object);
        else pending.push({ path, objects: [object] });
      }
      // The last prefix may go on in the next page.
      const open = pending.pop()!;
      if (pending.length >= this.o.batchSize) {
        await this.reconcileGroups(pending, seen);
        pending = [];
      }
      pending.push(open);
      if (this.stopped) return;
    }
    if (pending.length > 0) await this.reconcileGroups(pending, seen);
    // What it holds once the orphans found in it are deleted.
    const after = { objects: listed.objects - this.report.orphans.objects, bytes: listed.bytes - this.report.orphans.bytes };
    this.report.bucketListing = after;
    if (!this.dryRun) this.o.onBucketListed?.(after.objects, after.bytes);
    // Rows whose prefix holds no object at all.
    let afterSceneId: string | undefined;
    for (;;) {
      if (this.stopped) return;
      const rows = await listEntriesByScene(this.o.db, { afterSceneId, limit: this.o.batchSize * 5 });
      if (rows.length === 0) break;
      afterSceneId = rows.at(-1)!.sceneId;
      const unseen = rows.filter((r) => r.isValid && r.storageBucket === this.o.bucket && !seen.has(r.storagePath) && Object.keys(r.bands).length > 0 && !this.removed.has(r.sceneId));
      if (unseen.length > 0) await this.fix(unseen.map((row) => ({ row, sceneId: row.sceneId, orphans: [], vanished: row.bands })));
      if (rows.length < this.o.batchSize * 5) break;
    }
  }

  private async reconcileGroups(groups: { path: string; objects: ListedObject[] }[], seen: Set<string>): Promise<void> {
    const rows = await findEntriesByStoragePaths(this.o.db, this.o.bucket, groups.map((g) => g.path));
    const byPath = new Map(rows.map((r) => [r.storagePath, r]));
    const graceBefore = Date.now() - this.o.orphanGraceMs;
    const work: Finding[] = [];
    for (const group of groups) {
      seen.add(group.path);
      const row = byPath.get(group.path);
      const described = new Set(row ? Object.values(row.bands).map((b) => b.key) : []);
      const orphans = group.objects.filter((o) => !described.has(o.key) && o.lastModified !== undefined && o.lastModified.getTime() < graceBefore);
      const vanished: Record<string, CachedBand> = {};
      if (row?.isValid) {
        const listed = new Map(group.objects.map((o) => [o.key, o.size]));
        for (const [id, entry] of Object.entries(row.bands)) if (listed.get(entry.key) !== entry.size) vanished[id] = entry;
      }
      if (orphans.length > 0 || Object.keys(vanished).length > 0) {
        work.push({ row, sceneId: row?.sceneId ?? group.path.slice(group.path.lastIndexOf('/') + 1), orphans, vanished });
      }
    }
    if (work.length > 0) await this.fix(work);
  }

  /** Delete orphans and drop vanished entries, under the products' scene locks, re-checked there. */
  private async fix(findings: Finding[]): Promise<void> {
    if (this.dryRun) {
      for (const f of findings) this.count(f.orphans, Object.keys(f.vanished).length, false, f.sceneId);
      return;
    }
    await this.o.db.transaction().execute(async (trx) => {
      const { locked, busy } = await tryLockScenesForTransaction(trx, [...new Set(findings.map((f) => f.sceneId))]);
      for (const id of busy) this.skipped.add(id);
      const lockedSet = new Set(locked);
      const mine = findings.filter((f) => lockedSet.has(f.sceneId));
      const now = await findEntriesByStoragePaths(trx, this.o.bucket, mine.flatMap((f) => (f.row ? [f.row.storagePath] : f.orphans.map((o) => prefixOf(o.key)))));
      const byPath = new Map(now.map((r) => [r.storagePath, r]));
      for (const f of mine) {
        const path = f.row?.storagePath ?? prefixOf(f.orphans[0]!.key);
        const row = byPath.get(path);
        const described = new Set(row ? Object.values(row.bands).map((b) => b.key) : []);
        const orphans = f.orphans.filter((o) => !described.has(o.key));
        if (orphans.length > 0) await this.o.store.deleteObjects(this.o.bucket, orphans.map((o) => o.key));
        // Only entries whose object is still missing or truncated now that nobody downloads the product.
        const stillBroken: Record<string, CachedBand> = {};
        for (const [id, entry] of Object.entries(f.vanished)) {
          const head = await this.o.store.headObject(this.o.bucket, entry.key);
          if (!head || head.size !== entry.size) stillBroken[id] = entry;
        }
        const dropped = Object.keys(stillBroken).length > 0 ? await dropVanishedBandEntries(trx, f.sceneId, stillBroken) : { dropped: [], invalidated: false };
        this.count(orphans, dropped.dropped.length, dropped.invalidated, f.sceneId);
        if (orphans.length > 0) this.o.onOrphansDeleted?.(orphans.length, orphans.reduce((sum, o) => sum + o.size, 0));
      }
    });
  }

  private count(orphans: ListedObject[], bandsDropped: number, invalidated: boolean, sceneId: string): void {
    this.report.orphans.objects += orphans.length;
    this.report.orphans.bytes += orphans.reduce((sum, o) => sum + o.size, 0);
    this.report.vanished.bands += bandsDropped;
    if (invalidated) this.report.vanished.productsInvalidated += 1;
    if (bandsDropped > 0 && this.report.vanished.sceneIds.length < this.o.listCap) this.report.vanished.sceneIds.push(sceneId);
  }
}

/** What the reconciliation found for one product prefix. */
interface Finding {
  /** Its row as listed; `undefined`: no row (every object is an orphan). */
  row: CacheEntryRef | undefined;
  sceneId: string;
  /** Objects no row describes, older than the grace period. */
  orphans: ListedObject[];
  /** Band entries whose object was not listed, or listed with another size. */
  vanished: Record<string, CachedBand>;
}

/** The first entries whose bytes reach `bytes` (all of them for `Infinity`). */
function takeUntil(entries: CacheEntryRef[], bytes: number): CacheEntryRef[] {
  if (bytes === Infinity) return entries;
  const out: CacheEntryRef[] = [];
  let sum = 0;
  for (const e of entries) {
    if (sum >= bytes) break;
    out.push(e);
    sum += e.totalBytes;
  }
  return out;
}
