/**
 * Issue 15: the global cache's scheduled maintenance (cache-maintenance.ts) on real Postgres and
 * s3rver. Products are registered as the worker registers them (rows + real objects), their last
 * use set by SQL. What it proves:
 *
 * - eviction under a budget deletes invalid rows first, then valid products least recently used
 *   first (last use = the latest of creation, band registration and cache hit), until the bytes
 *   are at or below 90 % of the budget — rows and band objects gone, tenant copies untouched;
 * - a product whose scene lock a job holds is skipped (listed) and handled by the next run;
 * - the seed's cleanup semantics: invalid rows invalidated more than CACHE_INVALID_RETENTION_DAYS
 *   ago go with their objects; younger invalid rows and valid rows of any age stay;
 * - expiry: products unused for CACHE_UNUSED_TTL_DAYS go, used ones stay;
 * - reconciliation: an orphan older than the grace period is deleted, a fresh one kept, an object
 *   outside `sentinel-2/` never touched; an entry whose object vanished or was truncated is dropped,
 *   a row left with no band is marked invalid;
 * - a dry run changes nothing and reports what the real run then does;
 * - two runs never overlap: a run that finds the maintenance lock held does nothing.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { sql } from 'kysely';
import pg from 'pg';
import { createLogger, parseProductName, sceneStoragePath } from '@scenecache/core';
import { findScene } from '@scenecache/db';
import { createTestDatabase, seedCachedProduct, startTestS3, testProductName, type TestDatabase, type TestS3 } from '@scenecache/testing';
import { CACHE_MAINTENANCE_LOCK_NAME, CacheMaintenance, type CacheMaintenanceOptions } from '../src/cache-maintenance.js';

const logger = createLogger('cache-maintenance-test', 'silent');
const BODY = 100;

describe('global cache maintenance', () => {
  let t: TestDatabase;
  let s3: TestS3;
  let bucket: string;
  let tenantBucket: string;
  let next = 0;

  beforeAll(async () => {
    t = await createTestDatabase();
    s3 = await startTestS3();
  });
  afterAll(async () => {
    await s3?.close();
    await t?.drop();
  });
  beforeEach(async () => {
    bucket = s3.uniqueBucket('global');
    tenantBucket = s3.uniqueBucket('tenant');
    await s3.store.ensureBucket(bucket);
    await s3.store.ensureBucket(tenantBucket);
    await sql`DELETE FROM global_scene_cache`.execute(t.db);
  });

  async function put(bucketName: string, key: string, bytes = BODY): Promise<void> {
    await s3.client.send(new PutObjectCommand({ Bucket: bucketName, Key: key, Body: Buffer.alloc(bytes, 7) }));
  }

  /** Register a product with `bands` band objects of {@link BODY} bytes, dated as asked. */
  async function product(options: { bands?: number; lastUsedDaysAgo: number; accessedDaysAgo?: number; invalidDaysAgo?: number }): Promise<string> {
    const sceneId = testProductName(next++);
    await seedCachedProduct({ db: t.db, client: s3.client, bucket, sceneId, bodyBytes: BODY, ...options });
    return sceneId;
  }

  function maintenance(options: Partial<CacheMaintenanceOptions> = {}): CacheMaintenance {
    return new CacheMaintenance({ db: t.db, store: s3.store, bucket, maxBytes: undefined, unusedTtlDays: undefined, invalidRetentionDays: 30, logger, ...options });
  }

  const rows = async () => (await sql<{ scene_id: string; is_valid: boolean }>`SELECT scene_id, is_valid FROM global_scene_cache ORDER BY scene_id`.execute(t.db)).rows;
  const keysOf = (bucketName: string) => s3.store.listKeys(bucketName);

  /** Hold a product's scene lock shared, as a downloading job does, on a connection of its own. */
  async function holdSceneLock(sceneId: string): Promise<() => Promise<void>> {
    const client = new pg.Client({ connectionString: t.url });
    client.on('error', () => undefined);
    await client.connect();
    await client.query(`SELECT pg_advisory_lock_shared(hashtextextended($1, 0))`, [`scene:${sceneId}`]);
    return async () => {
      await client.end();
    };
  }

  it('evicts invalid rows first, then least recently used products, to 90 % of the budget; tenant copies stay', async () => {
    const accessedYesterday = await product({ lastUsedDaysAgo: 400, accessedDaysAgo: 1 }); // old row, used yesterday
    const fiveDays = await product({ lastUsedDaysAgo: 5 });
    const threeDays = await product({ lastUsedDaysAgo: 3 });
    const today = await product({ lastUsedDaysAgo: 0 });
    const invalidYoung = await product({ lastUsedDaysAgo: 0, invalidDaysAgo: 1 });
    // A tenant's copy of the product about to be evicted.
    const fiveDaysKey = Object.values((await findScene(t.db, fiveDays))!.bands)[0]!.key;
    await put(tenantBucket, fiveDaysKey);
    // 5 products × 200 bytes = 1000 > budget 800; down to ≤ 720: the invalid row (200), then the least recently used (200).
    const before = await keysOf(bucket);
    expect(before).toHaveLength(10);

    const report = await maintenance({ maxBytes: 800 }).run();
    expect(report.ran).toBe(true);
    expect(report.usageBefore.bytes).toBe(1000);
    expect(report.evicted).toEqual({ products: 2, bytes: 400, objects: 4, sceneIds: [invalidYoung, fiveDays] });
    expect(report.usageAfter.bytes).toBe(600);
    expect((await rows()).map((r) => r.scene_id)).toEqual([accessedYesterday, threeDays, today].sort());
    const after = await keysOf(bucket);
    expect(after).toHaveLength(6);
    expect(after.some((k) => k.includes(fiveDays) || k.includes(invalidYoung))).toBe(false);
    expect(await keysOf(tenantBucket)).toEqual([fiveDaysKey]);

    // Budget pressure again (budget 500 < 600): the least recently used of the rest goes next — the
    // product created 3 days ago, not the 400-day-old row a job used yesterday.
    const second = await maintenance({ maxBytes: 500 }).run();
    expect(second.evicted.sceneIds).toEqual([threeDays]);
    expect((await rows()).map((r) => r.scene_id)).toEqual([accessedYesterday, today].sort());
  });

  it('pages through the least-recently-used order (small batches) and stops once under 90 % of the budget', async () => {
    const byAge: string[] = [];
    for (const days of [70, 60, 50, 40, 30, 20, 10]) byAge.push(await product({ lastUsedDaysAgo: days, bands: 1 }));
    // 7 × 100 bytes; budget 400 → at most 360: the 4 least recently used go, in that order.
    const report = await maintenance({ maxBytes: 400, batchSize: 2 }).run();
    expect(report.evicted.sceneIds).toEqual(byAge.slice(0, 4));
    expect(report.usageAfter.bytes).toBe(300);
    expect((await rows()).map((r) => r.scene_id)).toEqual(byAge.slice(4).sort());
    // Under the budget: a second run evicts nothing.
    expect((await maintenance({ maxBytes: 400, batchSize: 2 }).run()).evicted.products).toBe(0);
  });

  it('skips a product whose scene lock a job holds and removes it on the next run', async () => {
    const locked = await product({ lastUsedDaysAgo: 10 });
    const free = await product({ lastUsedDaysAgo: 9 });
    const fresh = await product({ lastUsedDaysAgo: 0 });
    const release = await holdSceneLock(locked);
    const first = await maintenance({ unusedTtlDays: 7 }).run();
    expect(first.expired.sceneIds).toEqual([free]);
    expect(first.skipped).toEqual([locked]);
    expect((await rows()).map((r) => r.scene_id)).toEqual([locked, fresh].sort());
    expect((await keysOf(bucket)).filter((k) => k.includes(locked))).toHaveLength(2);
    await release();

    const second = await maintenance({ unusedTtlDays: 7 }).run();
    expect(second.expired.sceneIds).toEqual([locked]);
    expect(second.skipped).toEqual([]);
    expect((await rows()).map((r) => r.scene_id)).toEqual([fresh]);
    expect((await keysOf(bucket)).every((k) => k.includes(fresh))).toBe(true);
  });

  it("keeps the seed's cleanup semantics: invalid and invalidated over 30 days ago goes, with its objects; nothing else", async () => {
    const old = await product({ lastUsedDaysAgo: 100, invalidDaysAgo: 31 });
    const young = await product({ lastUsedDaysAgo: 100, invalidDaysAgo: 29 });
    const validOld = await product({ lastUsedDaysAgo: 1000 });
    // The seed's query, before: what it would delete.
    const seed = await sql<{ scene_id: string }>`SELECT scene_id FROM global_scene_cache WHERE is_valid = false AND updated_at < NOW() - INTERVAL '30 days'`.execute(t.db);
    expect(seed.rows.map((r) => r.scene_id)).toEqual([old]);

    const report = await maintenance().run();
    expect(report.invalidRemoved).toEqual({ products: 1, bytes: 200, objects: 2, sceneIds: [old] });
    expect(report.expired.products).toBe(0);
    expect(report.evicted.products).toBe(0);
    expect((await rows()).map((r) => r.scene_id)).toEqual([young, validOld].sort());
    expect((await keysOf(bucket)).some((k) => k.includes(old))).toBe(false);
    expect((await keysOf(bucket)).filter((k) => k.includes(young))).toHaveLength(2);
  });

  it('reconciles: old orphans deleted, fresh ones and keys outside sentinel-2/ kept; vanished or truncated entries dropped, an emptied row marked invalid', async () => {
    const partly = await product({ lastUsedDaysAgo: 1, bands: 3 });
    const emptied = await product({ lastUsedDaysAgo: 1, bands: 2 });
    const whole = await product({ lastUsedDaysAgo: 1, bands: 2 });
    const partlyRow = (await findScene(t.db, partly))!;
    // One object vanished, one truncated (overwritten smaller); every object of another product gone.
    await s3.store.deleteObject(bucket, partlyRow.bands.B02!.key);
    await put(bucket, partlyRow.bands.B03!.key, BODY - 1);
    for (const band of Object.values((await findScene(t.db, emptied))!.bands)) await s3.store.deleteObject(bucket, band.key);
    // Orphans: a leftover under a registered product's prefix, and a whole prefix no row describes.
    const leftover = `${partlyRow.storage_path}/leftover.jp2`;
    await put(bucket, leftover);
    const stray = `${sceneStoragePath(parseProductName(testProductName(next++)))}/B04.jp2`;
    await put(bucket, stray);
    await put(bucket, 'not-ours/readme.txt');

    // Within the grace period nothing orphaned is deleted; the entries are fixed at once.
    const first = await maintenance({ orphanGraceMs: 3_600_000 }).run();
    expect(first.orphans).toEqual({ objects: 0, bytes: 0 });
    expect(first.vanished).toEqual({ bands: 4, productsInvalidated: 1, sceneIds: [partly, emptied].sort() });
    expect(Object.keys((await findScene(t.db, partly))!.bands)).toEqual(['B04']);
    expect((await findScene(t.db, partly))!.is_valid).toBe(true);
    expect((await findScene(t.db, emptied))!.is_valid).toBe(false);
    expect(Object.keys((await findScene(t.db, whole))!.bands).sort()).toEqual(['B02', 'B03']);
    expect(await keysOf(bucket)).toEqual(expect.arrayContaining([leftover, stray, 'not-ours/readme.txt']));

    // Past the grace period: the orphans go (the truncated B03 object too: no entry describes it any
    // more); the key outside sentinel-2/ stays.
    const second = await maintenance({ orphanGraceMs: 0 }).run();
    expect(second.orphans).toEqual({ objects: 3, bytes: BODY * 2 + BODY - 1 });
    expect(second.vanished.bands).toBe(0);
    const left = await keysOf(bucket);
    expect(left).not.toEqual(expect.arrayContaining([leftover]));
    expect(left.includes(stray)).toBe(false);
    expect(left.includes(partlyRow.bands.B03!.key)).toBe(false);
    expect(left.includes('not-ours/readme.txt')).toBe(true);
    expect(left).toHaveLength(1 + 1 + 2);
    // The listing under sentinel-2/ after the run's deletions: partly's B04, whole's two bands.
    expect(second.bucketListing).toEqual({ objects: 3, bytes: 3 * BODY });
    // s3rver does not list multipart uploads: said, not failed.
    expect(second.multipartUploads).toEqual({ aborted: 0, supported: !s3.embedded });
  });

  it('a dry run changes nothing and reports what the run then does', async () => {
    await product({ lastUsedDaysAgo: 50, invalidDaysAgo: 40 });
    await product({ lastUsedDaysAgo: 20 });
    await product({ lastUsedDaysAgo: 10 });
    await product({ lastUsedDaysAgo: 0 });
    const before = { rows: await rows(), keys: await keysOf(bucket) };
    const options = { maxBytes: 500, unusedTtlDays: 15 };
    const dry = await maintenance(options).run({ dryRun: true });
    expect({ rows: await rows(), keys: await keysOf(bucket) }).toEqual(before);
    const real = await maintenance(options).run();
    const pick = (r: typeof dry) => ({ invalid: r.invalidRemoved, expired: r.expired, evicted: r.evicted, orphans: r.orphans, bytesAfter: r.usageAfter.bytes });
    expect(pick(dry)).toEqual(pick(real));
    // 800 bytes: the invalid row (40 days) and the 20-day product expire (400 bytes left ≤ 450): no eviction.
    expect([real.invalidRemoved.products, real.expired.products, real.evicted.products, real.usageAfter.bytes]).toEqual([1, 1, 0, 400]);
    expect(dry.dryRun).toBe(true);
  });

  it('never runs twice at once: a run that finds the maintenance lock held does nothing', async () => {
    const old = await product({ lastUsedDaysAgo: 50, invalidDaysAgo: 40 });
    const holder = new pg.Client({ connectionString: t.url });
    holder.on('error', () => undefined);
    await holder.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(hashtextextended($1, 0))`, [CACHE_MAINTENANCE_LOCK_NAME]);
      const blocked = await maintenance().run();
      expect(blocked.ran).toBe(false);
      expect(blocked.invalidRemoved.products).toBe(0);
      expect((await rows()).map((r) => r.scene_id)).toEqual([old]);
    } finally {
      await holder.end();
    }
    // Two runs started together: one works, the other finds the lock (or, started after, nothing to do).
    const [a, b] = await Promise.all([maintenance().run(), maintenance().run()]);
    expect(a.invalidRemoved.products + b.invalidRemoved.products).toBe(1);
    expect(await rows()).toEqual([]);
  });
});
