/**
 * Scenario `maintenance` (issue 15): the global cache's scheduled maintenance (`CacheMaintenance`
 * of @scenecache/global-cache) over `BENCH_MAINTENANCE_PRODUCTS` (100,000) cached products under
 * budget pressure, against bare `DeleteObjects` requests in the same run.
 *
 * World: a fresh migrated database (dropped at the end) and the embedded S3 (s3rver) in a process
 * of its own (`baselines/s3rver-process.ts`: Node 20 needs `--openssl-legacy-provider` for
 * s3rver's paged listings), or `S3_ENDPOINT`. Each product is a valid-looking L2A name (deterministic:
 * 100 products per MGRS tile, 5 days apart) with `BENCH_MAINTENANCE_BANDS` (2) band objects really
 * in the global bucket — tiny bodies (16–64 bytes), and each band entry's `size` and the row's
 * `total_bytes` are the bodies' real sizes, so the reconciliation finds the bucket and the table in
 * agreement (no band dropped as vanished or truncated). Objects are PutObject'ed with
 * `BENCH_MAINTENANCE_PUT_CONCURRENCY` (32) in flight (the seeding rate is a figure); rows are
 * inserted by SQL. Each product's last use is distinct and unrelated to its key order, so the
 * least recently used products are spread over the whole key space.
 *
 * 1. Run 1, under pressure: `GLOBAL_CACHE_MAX_BYTES` is set so that 90 % of it is half the seeded
 *    bytes: the run evicts about half the products (LRU), deletes their objects (DeleteObjects,
 *    batches of 200 products), then reconciles the whole `sentinel-2/` listing with the table. Its
 *    phases are timed apart through the store it is given (`measure/timed-store.ts`): eviction (run
 *    start → its listing starts), reconciliation of the listing (→ `onBucketListed`), the scan for
 *    rows without objects (→ the run returns).
 * 2. Run 2, right after (a bare listing in between): nothing to evict — the steady-state cost of
 *    a scheduled run over what is left, which is the reconciliation.
 * 3. Baselines, same run, same S3: a bare listing of the same prefix (`listObjectPages` alone, no
 *    table), the mean of one just before run 2 and one just after; the objects run 1 deleted,
 *    PutObject'ed again (same keys, same bodies) into two buckets of their own and deleted bare
 *    with `ObjectStore.deleteObjects` in run 1's (LRU) order — 1,000 keys per request (S3's
 *    maximum), and in run 1's own requests (its batches of 200 products: what the run costs
 *    beyond its DeleteObjects requests).
 *
 * s3rver 3.7.1 answers a DeleteObjects request whose keys share a directory with 500 (a race in
 * its directory clean-up, see `baselines/s3rver-process.ts`, which repairs it in the bench's
 * s3rver process): the notes count the DeleteObjects attempts that failed and were retried (0
 * expected).
 *
 * Quick (CI): 2,000 products (4,000 objects: the listing still takes several pages).
 */
import { createHash, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { sql, type Kysely } from 'kysely';
import { CACHE_KEY_PREFIX, createLogger, loadSettings, parseProductName, sceneStoragePath } from '@scenecache/core';
import { createDb, dropDatabase, migrateToLatest, type CachedBand, type DB } from '@scenecache/db';
import { CacheMaintenance, EVICTION_TARGET_RATIO, type MaintenanceReport, type RemovalSummary } from '@scenecache/global-cache';
import { startTestS3 } from '@scenecache/testing';
import { startS3rverProcess } from '../baselines/s3rver-process.js';
import { TimedStore, type StoreAccount } from '../measure/timed-store.js';
import { roundTo } from '../measure/sample-stats.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

const TARGET_PRODUCTS = Number(process.env.BENCH_MAINTENANCE_PRODUCTS ?? 100_000);
const QUICK_PRODUCTS = 2_000;
const BANDS_PER_PRODUCT = Number(process.env.BENCH_MAINTENANCE_BANDS ?? 2);
const PUT_CONCURRENCY = Number(process.env.BENCH_MAINTENANCE_PUT_CONCURRENCY ?? 32);
/** Share of the seeded bytes the budget forces out. */
const EVICT_SHARE = 0.5;
/** Products per MGRS tile (one every 5 days: 100 span 500 days). */
const PRODUCTS_PER_TILE = 100;
/** Bare deletes: keys per DeleteObjects request (S3's maximum). */
const DELETE_BATCH = 1_000;
const ROW_CHUNK = 5_000;
/** Seconds between progress lines during long phases. */
const PROGRESS_EVERY_MS = 5_000;

const BAND_IDS = ['B04', 'B08', 'B02', 'B03', 'B05', 'B06', 'B07', 'B8A', 'B11', 'B12', 'SCL', 'AOT', 'WVP'] as const;
/** Latitude bands (no I, O) and the 100 km square letters of an MGRS tile id. */
const LAT_BANDS = 'CDEFGHJKLMNPQRSTUVWX';
const SQUARE_COLUMNS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const SQUARE_ROWS = 'ABCDEFGHJKLMNPQRSTUV';
const DAY_MS = 86_400_000;

/** One seeded product: its row's fields and its band objects. */
interface SeedProduct {
  sceneId: string;
  storagePath: string;
  tile: string;
  mission: string;
  sensingDate: string;
  /** Seconds between its last use and the seeding (distinct; larger: evicted earlier). */
  unusedSeconds: number;
  objects: { band: string; key: string; size: number; safePath: string }[];
  totalBytes: number;
}

/** A multiplier coprime with `n` (a permutation of 0…n−1 by `i * m % n`). */
function coprimeMultiplier(n: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  for (const m of [7919, 7907, 7901, 104729]) if (gcd(m, n) === 1) return m;
  return 1;
}

/** Product `i` of `n` (deterministic; see the module comment). */
function productAt(i: number, n: number, bands: number, multiplier: number): SeedProduct {
  const tiles = Math.max(1, Math.ceil(n / PRODUCTS_PER_TILE));
  const t = i % tiles;
  const d = Math.floor(i / tiles);
  const zone = String(1 + (t % 60)).padStart(2, '0');
  const tile = `${zone}${LAT_BANDS[Math.floor(t / 60) % 20]}${SQUARE_COLUMNS[Math.floor(t / 1200) % 24]}${SQUARE_ROWS[Math.floor(t / 28_800) % 20]}`;
  const day = new Date(Date.UTC(2023, 0, 2) + d * 5 * DAY_MS).toISOString().slice(0, 10);
  const ymd = day.replaceAll('-', '');
  const mission = d % 2 === 0 ? 'S2A' : 'S2B';
  const orbit = String(1 + (t % 143)).padStart(3, '0');
  const product = parseProductName(`${mission}_MSIL2A_${ymd}T101031_N0510_R${orbit}_T${tile}_${ymd}T130035`);
  const storagePath = sceneStoragePath(product);
  const objects = BAND_IDS.slice(0, bands).map((band, b) => {
    const file = `T${tile}_${ymd}T101031_${band}_10m.jp2`;
    return { band, key: `${storagePath}/${file}`, size: 16 + ((i * 31 + b * 17) % 49), safePath: `${product.safeName}/GRANULE/L2A_T${tile}_A000000_${ymd}T101031/IMG_DATA/R10m/${file}` };
  });
  return {
    sceneId: product.sceneId,
    storagePath,
    tile: product.tile,
    mission: product.mission,
    sensingDate: product.sensingDate,
    unusedSeconds: 3_600 + ((i * multiplier) % n) * 30,
    objects,
    totalBytes: objects.reduce((sum, o) => sum + o.size, 0),
  };
}

/** The body of an object (its bytes depend on the key). */
function bodyOf(key: string, size: number): Buffer {
  return Buffer.alloc(size, createHash('md5').update(key).digest());
}

/** Prints at most one line per {@link PROGRESS_EVERY_MS}, and always the last when `force`. */
function throttled(log: (line: string) => void): (line: () => string, force?: boolean) => void {
  let last = performance.now();
  return (line, force = false) => {
    const now = performance.now();
    if (!force && now - last < PROGRESS_EVERY_MS) return;
    last = now;
    log(line());
  };
}

/**
 * PutObject every `{key, size}` into `bucket`, `concurrency` at once.
 * @returns seconds taken and the ETag of each object (in order).
 */
async function putObjects(
  client: S3Client,
  bucket: string,
  objects: readonly { key: string; size: number }[],
  concurrency: number,
  progress: (done: number, seconds: number) => void,
): Promise<{ seconds: number; etags: string[] }> {
  const etags = new Array<string>(objects.length);
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, objects.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= objects.length) return;
        const o = objects[i]!;
        const out = await client.send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: bodyOf(o.key, o.size) }));
        etags[i] = out.ETag ?? '';
        done += 1;
        progress(done, (performance.now() - t0) / 1000);
      }
    }),
  );
  return { seconds: (performance.now() - t0) / 1000, etags };
}

/** Insert the products' rows (registered in `bucket`, band entries as the worker writes them), then ANALYZE. */
async function insertRows(db: Kysely<DB>, bucket: string, products: readonly SeedProduct[], etags: ReadonlyMap<string, string>): Promise<void> {
  const registeredAt = new Date().toISOString();
  for (let from = 0; from < products.length; from += ROW_CHUNK) {
    const chunk = products.slice(from, from + ROW_CHUNK);
    const bands = chunk.map((p) => {
      const entries: Record<string, CachedBand> = {};
      for (const o of p.objects) {
        entries[o.band] = {
          key: o.key,
          size: o.size,
          sha3_256: createHash('sha3-256').update(bodyOf(o.key, o.size)).digest('hex'),
          etag: etags.get(o.key) ?? '',
          safe_path: o.safePath,
          registered_at: registeredAt,
          upload_id: randomUUID(),
        };
      }
      return JSON.stringify(entries);
    });
    await sql`
      INSERT INTO global_scene_cache (scene_id, storage_bucket, storage_path, bands, total_bytes, sensing_date, product_level, tile, mission,
        created_at, updated_at, last_accessed_at)
      SELECT u.scene_id, ${bucket}, u.path, u.bands::jsonb, u.total, u.sensing::date, 'L2A', u.tile, u.mission,
        now() - make_interval(secs => u.unused + 86400), now() - make_interval(secs => u.unused + 86400), now() - make_interval(secs => u.unused)
      FROM unnest(${chunk.map((p) => p.sceneId)}::text[], ${chunk.map((p) => p.storagePath)}::text[], ${bands}::text[], ${chunk.map((p) => p.totalBytes)}::bigint[],
        ${chunk.map((p) => p.sensingDate)}::text[], ${chunk.map((p) => p.tile)}::text[], ${chunk.map((p) => p.mission)}::text[], ${chunk.map((p) => p.unusedSeconds)}::float8[])
        AS u(scene_id, path, bands, total, sensing, tile, mission, unused)`.execute(db);
  }
  await sql`ANALYZE global_scene_cache`.execute(db);
}

/** The S3 the scenario runs on. */
interface BenchS3 {
  client: S3Client;
  /** How the notes name it. */
  kind: string;
  /** A fresh bucket name (`S3_ENDPOINT`: emptied and deleted by `close`). */
  bucketName(label: string): string;
  /** `S3_ENDPOINT`: empty the buckets with DeleteObjects first (`close` would delete one key at a time). */
  close(store: TimedStore | undefined, buckets: readonly string[]): Promise<void>;
}

async function startS3(): Promise<BenchS3> {
  if (loadSettings(process.env).s3Endpoint !== undefined) {
    const s3 = await startTestS3();
    return {
      client: s3.client,
      kind: `S3_ENDPOINT ${s3.endpoint}`,
      bucketName: (label) => s3.uniqueBucket(label),
      async close(store, buckets) {
        for (const bucket of store ? buckets : []) await store!.deleteObjects(bucket, await store!.listKeys(bucket)).catch(() => 0);
        await s3.close();
      },
    };
  }
  const s3 = await startS3rverProcess();
  const suffix = randomUUID().slice(0, 8);
  return {
    client: s3.client,
    kind: 's3rver 3.7.1 in its own process (node --openssl-legacy-provider; DeleteObjects clean-up race repaired)',
    bucketName: (label) => `bench-${label}-${suffix}`,
    close: () => s3.close(),
  };
}

/** A report without its scene id lists (for the JSON). */
function briefReport(r: MaintenanceReport): Record<string, unknown> {
  const strip = ({ sceneIds: _ids, ...rest }: RemovalSummary) => rest;
  return {
    durationMs: r.durationMs,
    usageBefore: r.usageBefore,
    usageAfter: r.usageAfter,
    budgetBytes: r.budgetBytes,
    evicted: strip(r.evicted),
    expired: strip(r.expired),
    invalidRemoved: strip(r.invalidRemoved),
    orphans: r.orphans,
    vanished: { bands: r.vanished.bands, productsInvalidated: r.vanished.productsInvalidated },
    bucketListing: r.bucketListing,
    multipartUploads: r.multipartUploads,
    skipped: r.skipped.length,
  };
}

/** The store's account, rounded (for the JSON). */
function roundAccount(a: StoreAccount): Record<string, unknown> {
  const { listStartedAt: _started, deleteBatches: _batches, ...rest } = a;
  return { ...rest, deleteMs: Math.round(a.deleteMs), listMs: Math.round(a.listMs) };
}

export const scenario: Scenario = {
  id: 'maintenance',
  title: 'cache maintenance over 100,000 cached products under budget pressure vs bare DeleteObjects',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const n = ctx.quick ? QUICK_PRODUCTS : TARGET_PRODUCTS;
    const bands = BANDS_PER_PRODUCT;
    if (!(Number.isInteger(n) && n > 0 && Number.isInteger(bands) && bands >= 1 && bands <= BAND_IDS.length)) {
      throw new RangeError(`BENCH_MAINTENANCE_PRODUCTS must be a positive integer and BENCH_MAINTENANCE_BANDS 1–${BAND_IDS.length}`);
    }
    const base = loadSettings(process.env);
    const dbUrl = base.databaseUrl.replace(/\/[^/?]*(\?|$)/, `/scenecache_bench_maintenance_${randomUUID().slice(0, 8)}$1`);
    await migrateToLatest(dbUrl);
    const db = createDb(dbUrl, { max: 4 });
    let s3: BenchS3 | undefined;
    let cleanupStore: TimedStore | undefined;
    const buckets: string[] = [];
    try {
      s3 = await startS3();
      const [bucket, bareBucket, replayBucket] = ['maintenance', 'maintenance-bare', 'maintenance-replay'].map((label) => s3!.bucketName(label)) as [string, string, string];
      buckets.push(bucket, bareBucket, replayBucket);
      let listProgress = (_a: StoreAccount): void => undefined;
      const store = new TimedStore(s3.client, CACHE_KEY_PREFIX, (a) => listProgress(a));
      cleanupStore = store;
      await store.ensureBucket(bucket);
      await store.ensureBucket(bareBucket);
      await store.ensureBucket(replayBucket);

      // Seed: objects, then rows.
      const multiplier = coprimeMultiplier(n);
      const products = Array.from({ length: n }, (_, i) => productAt(i, n, bands, multiplier));
      const objects = products.flatMap((p) => p.objects);
      const seedBytes = products.reduce((sum, p) => sum + p.totalBytes, 0);
      ctx.log(`seeding ${n.toLocaleString('en-US')} products (${objects.length.toLocaleString('en-US')} objects, ${bands} per product) with PutObject × ${PUT_CONCURRENCY} in flight`);
      const seedProgress = throttled((line) => ctx.log(line));
      const seeded = await putObjects(s3.client, bucket, objects, PUT_CONCURRENCY, (done, s) =>
        seedProgress(() => `seeded ${done.toLocaleString('en-US')} / ${objects.length.toLocaleString('en-US')} objects (${Math.round(done / s)} objects/s)`),
      );
      const seedRate = objects.length / seeded.seconds;
      ctx.log(`seeded ${objects.length.toLocaleString('en-US')} objects in ${seeded.seconds.toFixed(1)} s (${Math.round(seedRate)} objects/s)`);
      const rowsStart = performance.now();
      await insertRows(db, bucket, products, new Map(objects.map((o, i) => [o.key, seeded.etags[i]!])));
      const rowsSeconds = (performance.now() - rowsStart) / 1000;
      ctx.log(`inserted ${n.toLocaleString('en-US')} rows in ${rowsSeconds.toFixed(1)} s`);

      // Run 1: under pressure.
      const maxBytes = Math.floor((seedBytes * (1 - EVICT_SHARE)) / EVICTION_TARGET_RATIO);
      const removedProgress = { products: 0, objects: 0 };
      let runStart = 0;
      let runLabel = 'run 1';
      let listedAt: number | undefined;
      const progress = throttled((line) => ctx.log(line));
      const maintenance = new CacheMaintenance({
        db,
        store,
        bucket,
        maxBytes,
        unusedTtlDays: undefined,
        invalidRetentionDays: 30,
        logger: createLogger('bench-maintenance', 'warn'),
        onRemoved: (_reason, removed) => {
          removedProgress.products += removed.products;
          removedProgress.objects += removed.objects;
          progress(() => `${runLabel}: evicted ${removedProgress.products.toLocaleString('en-US')} products, ${removedProgress.objects.toLocaleString('en-US')} objects (${Math.round(removedProgress.objects / ((performance.now() - runStart) / 1000))} objects/s)`);
        },
        onBucketListed: () => {
          listedAt = performance.now();
        },
      });
      const timedRun = async (label: string): Promise<{ report: MaintenanceReport; ms: number; listedAt: number | undefined; account: StoreAccount; start: number }> => {
        store.reset();
        runLabel = label;
        listedAt = undefined;
        removedProgress.products = 0;
        removedProgress.objects = 0;
        listProgress = (a) => progress(() => `${label}: listed ${a.listedObjects.toLocaleString('en-US')} objects (${a.listPages} pages, ${roundTo(a.listMs / a.listPages, 0)} ms a page)`);
        runStart = performance.now();
        const report = await maintenance.run();
        const ms = performance.now() - runStart;
        const account = store.reset();
        if (!report.ran || report.aborted) throw new Error(`${label}: the run did not run through (ran ${report.ran}, aborted ${report.aborted})`);
        ctx.log(
          `${label}: ${roundTo(ms / 1000, 1)} s; evicted ${report.evicted.products} products (${report.evicted.objects} objects, ${report.evicted.bytes} bytes); listing ${report.bucketListing?.objects ?? '?'} objects; orphans ${report.orphans.objects}, vanished ${report.vanished.bands}, skipped ${report.skipped.length}`,
        );
        return { report, ms, listedAt, account, start: runStart };
      };
      ctx.log(`run 1: budget ${maxBytes.toLocaleString('en-US')} bytes for ${seedBytes.toLocaleString('en-US')} seeded (evicts down to ${Math.floor(maxBytes * EVICTION_TARGET_RATIO).toLocaleString('en-US')})`);
      const run1 = await timedRun('run 1');
      const r1 = run1.report;
      const left = { products: n - r1.evicted.products, objects: objects.length - r1.evicted.objects };
      const check = (what: string, ok: boolean) => {
        if (!ok) throw new Error(`run 1: ${what} (report: ${JSON.stringify(briefReport(r1))})`);
      };
      check('nothing evicted', r1.evicted.products > 0 && r1.evicted.objects === r1.evicted.products * bands);
      check('the registered bytes are not at or under 90 % of the budget', r1.usageAfter.bytes <= maxBytes * EVICTION_TARGET_RATIO);
      check('the reconciliation changed something (the bucket and the table should agree)', r1.orphans.objects === 0 && r1.vanished.bands === 0 && r1.skipped.length === 0);
      check(`the listing after the deletes is not the ${left.objects} objects left`, r1.bucketListing?.objects === left.objects && r1.usageAfter.products === left.products);
      check('objects deleted through the store differ from the report', run1.account.deletedKeys === r1.evicted.objects);

      // Baseline: a bare listing of the same prefix, just before run 2 and just after (the mean).
      const bareListing = async (label: string): Promise<number> => {
        listProgress = () => undefined;
        const t0 = performance.now();
        let listed = 0;
        let pages = 0;
        for await (const page of store.listObjectPages(bucket, CACHE_KEY_PREFIX)) {
          listed += page.length;
          pages += 1;
          progress(() => `${label}: ${listed.toLocaleString('en-US')} objects (${pages} pages)`);
        }
        const ms = performance.now() - t0;
        store.reset();
        if (listed !== left.objects) throw new Error(`${label}: ${listed} objects, expected ${left.objects}`);
        ctx.log(`${label}: ${listed.toLocaleString('en-US')} objects in ${pages} pages, ${roundTo(ms / 1000, 2)} s`);
        return ms;
      };
      const bareListBefore = await bareListing('bare listing before run 2');

      // Run 2: nothing to evict.
      const run2 = await timedRun('run 2');
      const r2 = run2.report;
      if (r2.evicted.products !== 0 || r2.bucketListing?.objects !== left.objects || r2.orphans.objects !== 0 || r2.vanished.bands !== 0) {
        throw new Error(`run 2: expected no change and ${left.objects} objects listed (report: ${JSON.stringify(briefReport(r2))})`);
      }
      const bareListAfter = await bareListing('bare listing after run 2');
      const bareListMs = (bareListBefore + bareListAfter) / 2;

      // Baselines: the objects run 1 deleted, again, in two buckets of their own, deleted bare in
      // run 1's (LRU) order: 1,000 keys per request, then in run 1's own requests (same keys).
      const remaining = new Set((await db.selectFrom('global_scene_cache').select('scene_id').execute()).map((r) => r.scene_id));
      const evicted = products.filter((p) => !remaining.has(p.sceneId)).sort((a, b) => b.unusedSeconds - a.unusedSeconds || (a.sceneId < b.sceneId ? -1 : 1));
      if (evicted.length !== r1.evicted.products) throw new Error(`run 1 reported ${r1.evicted.products} products evicted, the table lacks ${evicted.length}`);
      const bareObjects = evicted.flatMap((p) => p.objects);
      const bareKeys = bareObjects.map((o) => o.key);
      const runBatches = run1.account.deleteBatches;
      if (runBatches.flat().length !== bareKeys.length || new Set(runBatches.flat()).size !== new Set(bareKeys).size) throw new Error('run 1 deleted other keys than its evicted rows describe');
      const bareSeedSeconds: number[] = [];
      for (const target of [bareBucket, replayBucket]) {
        ctx.log(`bare DeleteObjects: seeding the ${bareObjects.length.toLocaleString('en-US')} objects run 1 deleted into ${target}`);
        const bareSeedProgress = throttled((line) => ctx.log(line));
        const put = await putObjects(s3.client, target, bareObjects, PUT_CONCURRENCY, (done, sec) =>
          bareSeedProgress(() => `bare: seeded ${done.toLocaleString('en-US')} / ${bareObjects.length.toLocaleString('en-US')} objects (${Math.round(done / sec)} objects/s)`),
        );
        bareSeedSeconds.push(put.seconds);
      }
      const timeDeletes = async (target: string, batches: readonly string[][], label: string): Promise<{ ms: number; account: StoreAccount }> => {
        store.reset();
        let done = 0;
        const t0 = performance.now();
        for (const batch of batches) {
          await store.deleteObjects(target, batch);
          done += batch.length;
          progress(() => `${label}: ${done.toLocaleString('en-US')} / ${bareKeys.length.toLocaleString('en-US')} objects`);
        }
        const ms = performance.now() - t0;
        const account = store.reset();
        const left = (await store.listKeys(target)).length;
        if (left !== 0) throw new Error(`${label} left ${left} objects`);
        ctx.log(`${label}: ${bareKeys.length.toLocaleString('en-US')} objects in ${batches.length} requests, ${roundTo(ms / 1000, 1)} s (${Math.round(bareKeys.length / (ms / 1000))} objects/s)`);
        return { ms, account };
      };
      const thousands = Array.from({ length: Math.ceil(bareKeys.length / DELETE_BATCH) }, (_, i) => bareKeys.slice(i * DELETE_BATCH, (i + 1) * DELETE_BATCH));
      const bare = await timeDeletes(bareBucket, thousands, `bare DeleteObjects, ${DELETE_BATCH} keys per request`);
      const replay = await timeDeletes(replayBucket, runBatches, "bare DeleteObjects, run 1's requests");
      const bareRate = bareKeys.length / (bare.ms / 1000);
      const replayRate = bareKeys.length / (replay.ms / 1000);

      // Phases of run 1.
      const listStarted = run1.account.listStartedAt ?? run1.start + run1.ms;
      const evictionMs = listStarted - run1.start;
      const reconcileMs = (run1.listedAt ?? run1.start + run1.ms) - listStarted;
      const rowScanMs = run1.start + run1.ms - (run1.listedAt ?? run1.start + run1.ms);
      const runRate = r1.evicted.objects / (run1.ms / 1000);
      const evictionRate = r1.evicted.objects / (evictionMs / 1000);
      const sizeLabel = `${n.toLocaleString('en-US')} products × ${bands} objects`;
      const s = (ms: number) => roundTo(ms / 1000, 2);
      const n0 = (v: number) => v.toLocaleString('en-US');
      const retried = (a: StoreAccount) => Object.entries(a.attempts).filter(([k]) => k.startsWith('DeleteObjectsCommand ') && !k.endsWith(' 200')).reduce((sum, [, v]) => sum + v, 0);
      const retries = `DeleteObjects attempts answered with an error and retried by the SDK: run 1 ${retried(run1.account)} of ${run1.account.deleteCalls} requests, bare ${retried(bare.account)} of ${thousands.length}, replay ${retried(replay.account)} of ${runBatches.length}`;
      const shape =
        `${n0(r1.evicted.products)} products (${n0(r1.evicted.objects)} objects, ${n0(r1.evicted.bytes)} of ${n0(seedBytes)} bytes) evicted, budget ${n0(maxBytes)} bytes; ` +
        `${s(run1.ms)} s = eviction ${s(evictionMs)} s (DeleteObjects ${s(run1.account.deleteMs)} s in ${run1.account.deleteCalls} requests, the rest Postgres and the run's own work) + ` +
        `reconciliation of the listing ${s(reconcileMs)} s (ListObjectsV2 ${s(run1.account.listMs)} s, ${run1.account.listPages} pages) + rows without objects and the usage ${s(rowScanMs)} s`;
      const bareNote = `bare: run 1's ${n0(bareKeys.length)} keys PutObject'ed again into buckets of their own and deleted with ObjectStore.deleteObjects in LRU order, ${DELETE_BATCH} keys per request (${thousands.length} requests, ${s(bare.ms)} s) or in run 1's own requests (${runBatches.length} requests of ≤ ${Math.max(...runBatches.map((b) => b.length))} keys, ${s(replay.ms)} s); ${retries}; S3: ${s3.kind}`;
      const run2Note = `run 2 right after run 1 (nothing to evict, ${n0(left.objects)} objects of ${n0(left.products)} products left): ${s(run2.ms)} s, of which ListObjectsV2 ${s(run2.account.listMs)} s (${run2.account.listPages} pages); bare listing: listObjectPages of the same prefix, nothing else, the mean of one just before run 2 (${s(bareListBefore)} s) and one just after (${s(bareListAfter)} s)`;
      const seedNote = `${n0(objects.length)} objects of 16–64 bytes, PutObject × ${PUT_CONCURRENCY} in flight, ${s(seeded.seconds * 1000)} s; the baselines' 2 × ${n0(bareObjects.length)} at ${bareSeedSeconds.map((sec) => Math.round(bareObjects.length / sec)).join(' and ')} objects/s; ${n0(n)} rows by SQL in ${s(rowsSeconds * 1000)} s; S3: ${s3.kind}`;
      const figures: Figure[] = [
        {
          name: `maintenance run under budget pressure (${sizeLabel}, about half evicted): time`,
          value: s(run1.ms),
          unit: 's',
          baseline: { name: `bare DeleteObjects of the same ${n0(r1.evicted.objects)} objects, ${DELETE_BATCH} keys per request`, value: s(bare.ms) },
          ratio: roundTo(run1.ms / bare.ms, 3),
          note: shape,
        },
        {
          name: 'objects deleted per second by that run (whole run)',
          value: Math.round(runRate),
          unit: 'objects/s',
          baseline: { name: `bare DeleteObjects, ${DELETE_BATCH} keys per request`, value: Math.round(bareRate) },
          ratio: roundTo(runRate / bareRate, 3),
          note: bareNote,
        },
        {
          name: 'objects deleted per second by its eviction phase (run start → its listing starts)',
          value: Math.round(evictionRate),
          unit: 'objects/s',
          baseline: { name: `bare DeleteObjects, ${DELETE_BATCH} keys per request`, value: Math.round(bareRate) },
          ratio: roundTo(evictionRate / bareRate, 3),
          note: bareNote,
        },
        {
          name: `objects deleted per second by its eviction phase, vs the same DeleteObjects requests bare`,
          value: Math.round(evictionRate),
          unit: 'objects/s',
          baseline: { name: "bare DeleteObjects replaying run 1's requests", value: Math.round(replayRate) },
          ratio: roundTo(evictionRate / replayRate, 3),
          note: bareNote,
        },
        {
          name: `its reconciliation of the listing (${n0(left.objects)} objects left)`,
          value: s(reconcileMs),
          unit: 's',
          baseline: { name: 'bare listing of the same prefix', value: s(bareListMs) },
          ratio: roundTo(reconcileMs / bareListMs, 3),
          note: run2Note,
        },
        {
          name: `second run right after (nothing to evict, ${n0(left.products)} products): time`,
          value: s(run2.ms),
          unit: 's',
          baseline: { name: 'bare listing of the same prefix', value: s(bareListMs) },
          ratio: roundTo(run2.ms / bareListMs, 3),
          note: run2Note,
        },
        { name: 'seeding: PutObject rate of the tiny band objects', value: Math.round(seedRate), unit: 'objects/s', note: seedNote },
      ];
      return {
        id: 'maintenance',
        title: scenario.title,
        figures,
        details: {
          products: n,
          bands_per_product: bands,
          objects: objects.length,
          seeded_bytes: seedBytes,
          budget_bytes: maxBytes,
          s3: s3.kind,
          put_concurrency: PUT_CONCURRENCY,
          seed_seconds: roundTo(seeded.seconds, 1),
          seed_objects_per_s: Math.round(seedRate),
          rows_seconds: roundTo(rowsSeconds, 1),
          run1: { ms: Math.round(run1.ms), eviction_ms: Math.round(evictionMs), reconcile_ms: Math.round(reconcileMs), row_scan_ms: Math.round(rowScanMs), store: roundAccount(run1.account), report: briefReport(r1) },
          run2: { ms: Math.round(run2.ms), store: roundAccount(run2.account), report: briefReport(r2) },
          bare_list: { ms: Math.round(bareListMs), before_run2_ms: Math.round(bareListBefore), after_run2_ms: Math.round(bareListAfter), objects: left.objects },
          bare_delete: { ms: Math.round(bare.ms), objects: bareKeys.length, requests: thousands.length, store: roundAccount(bare.account) },
          replay_delete: { ms: Math.round(replay.ms), objects: bareKeys.length, requests: runBatches.length, store: roundAccount(replay.account) },
          bare_seed_seconds: bareSeedSeconds.map((sec) => roundTo(sec, 1)),
        },
      };
    } finally {
      await s3?.close(cleanupStore, buckets);
      await db.destroy();
      await dropDatabase(dbUrl);
    }
  },
};
