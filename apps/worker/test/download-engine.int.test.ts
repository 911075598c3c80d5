/**
 * Issue 11: the download engine on real services (Postgres, Redis, s3rver, cdse-sim throttled per
 * connection as CDSE is) with spawned worker processes.
 *
 * - The (product, band) file is the unit of download: one job streams its missing bands at once
 *   (up to the free slots), and two jobs that want different bands of one product download them
 *   at the same time; the product's lookup and `manifest.safe` are read once.
 * - A new product's burst: the job that prepares it hands the free slots to the largest files the
 *   waiting jobs want (largest first), not to its own small ones.
 * - More files than slots: a job streams its next file on the slot of its finished stream instead
 *   of queuing for a slot again.
 * - Fair upstream slots: with one slot, a tenant that floods the fleet does not hold back another
 *   tenant's job (it gets the next free slot), and a tenant's own jobs go by priority.
 * - The monthly transfer budget: when the next file would take the 30-day window past
 *   UPSTREAM_MONTHLY_BYTES, downloads wait (`waiting_for: upstream_budget`), cached jobs complete,
 *   and the waiting download resumes once the window frees up.
 * - Adoption after an invalidation: an object stored after the product was invalidated, but not
 *   registered (the worker was killed), is adopted by the retry, not downloaded again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { parseProductName, resolveBand } from '@scenecache/core';
import { findJobById, findScene } from '@scenecache/db';
import { until } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

/** Real product names (fixtures/cdse/sentinel2_products.tsv). */
const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const L1C = 'S2A_MSIL1C_20170413T104021_N0204_R008_T31SCA_20170413T104021';
const FLOOD = [
  'S2A_MSIL1C_20171012T112111_N0205_R037_T29SQC_20171012T112713',
  'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248',
  'S2A_MSIL2A_20170827T105651_N0205_R094_T31WFN_20170827T105652',
  'S2B_MSIL2A_20230209T055009_N0509_R048_T43SBB_20230209T084058',
  'S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022157',
];
const OTHER = 'S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126';

/** Bytes per second per upstream connection: a 10 m band of these (sizeScale 0.002) takes ~1 s. */
const RATE = 250_000;

/** The SAFE file-name suffix of `band` in `product` (the sim counts downloads per file). */
const suffix = (product: string, band: string): string => resolveBand(parseProductName(product).level, band).fileSuffix;

describe('the download engine', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: RATE }, env: { WAITER_FALLBACK_DELAY_MS: '120000' } });
  });
  afterEach(async () => {
    await h.killSpawnedWorkers();
  });
  afterAll(async () => {
    if (h) await h.close();
  });

  const spawn = (env: Record<string, string> = {}): SpawnedWorker => h.spawnWorker(env);

  async function enqueue(tenant: string, product: string, bands: string[], priority?: number): Promise<string> {
    const res = await h.enqueue({ tenant_id: tenant, scene_id: product, bands, ...(priority === undefined ? {} : { priority }) });
    expect(res.status).toBe(202);
    return res.body.job_id!;
  }


  /** Sample the sim's concurrent streams every 10 ms until `done` settles; resolves with the peak. */
  async function peakStreamsWhile<T>(done: Promise<T>): Promise<{ peak: number; value: T }> {
    let peak = 0;
    let settled = false;
    const value = done.finally(() => (settled = true));
    while (!settled) {
      peak = Math.max(peak, h.sim.counters().currentConcurrentDownloads);
      await sleep(10);
    }
    return { peak, value: await value };
  }

  it('one job streams its four missing bands at once; lookup and manifest are read once', async () => {
    const before = h.sim.counters();
    spawn();
    const id = await enqueue('engine-one', L2A, ['B02', 'B03', 'B04', 'B08']);
    const { peak, value: rows } = await peakStreamsWhile(h.waitForJobs([id], 30_000));
    expect(rows[0]).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B02', 'B03', 'B04', 'B08'], attempts: 1 });
    expect(peak).toBe(4);
    const after = h.sim.counters();
    expect(after.manifestRequests - before.manifestRequests).toBe(1);
    expect(after.catalogueRequests - before.catalogueRequests).toBe(1);
    for (const band of ['B02', 'B03', 'B04', 'B08']) expect(h.sim.downloadsOf(L2A, suffix(L2A, band))).toMatchObject({ started: 1, completed: 1 });
  });

  it('two jobs that want different bands of one product download them at the same time', async () => {
    const before = h.sim.counters();
    spawn();
    spawn();
    const x = await enqueue('engine-x', L1C, ['B02']);
    const y = await enqueue('engine-y', L1C, ['B03']);
    // Both files mid-stream at one moment.
    const both = until(
      'B02 and B03 to stream at the same time',
      () => {
        const [b02, b03] = [h.sim.downloadsOf(L1C, suffix(L1C, 'B02')), h.sim.downloadsOf(L1C, suffix(L1C, 'B03'))];
        return b02.bytes > 0 && b02.completed === 0 && b03.bytes > 0 && b03.completed === 0;
      },
      20_000,
      5,
    );
    await both;
    const rows = await h.waitForJobs([x, y], 30_000);
    expect(rows.map((r) => [r.cache_status, r.bands_downloaded])).toEqual([
      ['downloaded', ['B02']],
      ['downloaded', ['B03']],
    ]);
    // One lookup and one manifest read for the product, whichever job prepared it.
    const after = h.sim.counters();
    expect(after.manifestRequests - before.manifestRequests).toBe(1);
    expect(after.catalogueRequests - before.catalogueRequests).toBe(1);
    // Their runs overlapped in time.
    expect(rows[0]!.finished_at!.getTime()).toBeGreaterThan(rows[1]!.started_at!.getTime());
    expect(rows[1]!.finished_at!.getTime()).toBeGreaterThan(rows[0]!.started_at!.getTime());
  });
});

describe('a new product wanted by several jobs at once', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: RATE }, env: { UPSTREAM_CONCURRENCY: '2', WORKER_CONCURRENCY: '8', WAITER_FALLBACK_DELAY_MS: '120000' } });
  });
  afterAll(async () => {
    await h.killSpawnedWorkers();
    if (h) await h.close();
  });

  const enqueue = async (tenant: string, product: string, bands: string[]): Promise<string> => {
    const res = await h.enqueue({ tenant_id: tenant, scene_id: product, bands });
    expect(res.status).toBe(202);
    return res.body.job_id!;
  };

  it('the job that prepares it hands the free slots to the largest wanted files, even when its own are small', async () => {
    // The preparer wants two 60 m bands; it is alone until its manifest read, slowed to 10 kB/s,
    // is under way. Then three jobs come that want 10 m and 20 m bands of the product.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 10_000, target: 'manifest', product: OTHER });
    const worker = h.spawnWorker();
    const preparer = await enqueue('burst-small', OTHER, ['B01', 'B09']);
    await until('the manifest read to start', () => h.sim.counters().manifestRequests > 0, 20_000, 5);
    const others = [await enqueue('burst-10m', OTHER, ['B02', 'B04']), await enqueue('burst-20m', OTHER, ['B05', 'B8A']), await enqueue('burst-mixed', OTHER, ['B03', 'B01'])];
    // The order in which the files' streams start at the sim (sampled every 5 ms).
    const started: string[] = [];
    const bands = ['B01', 'B09', 'B02', 'B04', 'B05', 'B8A', 'B03'];
    const watch = until(
      'every file to start',
      () => {
        for (const band of bands) if (!started.includes(band) && h.sim.downloadsOf(OTHER, suffix(OTHER, band)).started > 0) started.push(band);
        return started.length === bands.length;
      },
      60_000,
      5,
    );
    const rows = await h.waitForJobs([preparer, ...others], 60_000);
    await watch;
    expect(rows.map((r) => r.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    // The two slots went to the two largest wanted files (10 m bands), not to the preparer's.
    const sizes = new Map(await Promise.all(bands.map(async (b) => [b, (await h.upstreamFile(OTHER, b)).size] as const)));
    const largest = [...bands].sort((a, b) => sizes.get(b)! - sizes.get(a)!).slice(0, 2);
    expect(started.slice(0, 2).sort()).toEqual(largest.sort());
    expect(worker.logs.some((l) => l.msg === 'burst planned: the free slots to the largest wanted files' && l.jobId === preparer)).toBe(true);
    for (const band of bands) expect(h.sim.downloadsOf(OTHER, suffix(OTHER, band))).toMatchObject({ started: 1, completed: 1 });
    expect(h.sim.counters().manifestRequests).toBe(1);
  });
});

describe('more files than slots', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: RATE }, env: { UPSTREAM_CONCURRENCY: '1', WAITER_FALLBACK_DELAY_MS: '120000' } });
  });
  afterAll(async () => {
    await h.killSpawnedWorkers();
    if (h) await h.close();
  });

  it('a job keeps streaming its next file on the slot of a finished stream, without queuing again', async () => {
    h.spawnWorker();
    const res = await h.enqueue({ tenant_id: 'one-slot', scene_id: L1C, bands: ['B02', 'B03', 'B04'] });
    expect(res.status).toBe(202);
    const [row] = await h.waitForJobs([res.body.job_id!], 60_000);
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', attempts: 1, waits: 0 });
    expect([...row!.bands_downloaded].sort()).toEqual(['B02', 'B03', 'B04']);
    const counters = h.sim.counters();
    expect(counters.peakConcurrentDownloads).toBe(1);
    for (const band of ['B02', 'B03', 'B04']) expect(h.sim.downloadsOf(L1C, suffix(L1C, band))).toMatchObject({ started: 1, completed: 1 });
  });
});

describe('fair upstream slots (one slot)', () => {
  let h: PipelineHarness;
  let worker: SpawnedWorker | undefined;

  beforeAll(async () => {
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: RATE }, env: { UPSTREAM_CONCURRENCY: '1', WORKER_CONCURRENCY: '8', WAITER_FALLBACK_DELAY_MS: '120000' } });
  });
  afterAll(async () => {
    await worker?.kill();
    if (h) await h.close();
  });

  it('a flood of one tenant does not hold back another tenant: its job takes the next free slot; a tenant\'s jobs go by priority', async () => {
    worker = h.spawnWorker();
    await worker.waitForLog((l) => l.msg === 'worker started', 30_000);
    // Tenant A floods: 5 products, one band each; lower priority numbers enqueued later.
    const flood: string[] = [];
    for (const [i, product] of FLOOD.entries()) flood.push(await h.enqueue({ tenant_id: 'flood-a', scene_id: product, bands: ['B04'], priority: FLOOD.length - i }).then((r) => r.body.job_id!));
    // The first of A's downloads runs; the rest queue for the slot.
    await until('one of A\'s downloads to stream', () => h.sim.counters().currentConcurrentDownloads === 1, 20_000);
    await until('A\'s other jobs to wait for the slot', async () => {
      const rows = await Promise.all(flood.map((id) => findJobById(h.db, id)));
      return rows.filter((r) => r?.waiting_for === 'upstream_slot').length === FLOOD.length - 1;
    }, 20_000);
    // Tenant B asks for one band of another product.
    const b = await h.enqueue({ tenant_id: 'fair-b', scene_id: OTHER, bands: ['B04'] }).then((r) => r.body.job_id!);
    await until('B to wait for the slot', async () => (await findJobById(h.db, b))?.waiting_for === 'upstream_slot', 20_000);

    const rows = await h.waitForJobs([...flood, b], 60_000);
    expect(rows.every((r) => r.status === 'completed' && r.cache_status === 'downloaded')).toBe(true);
    const order = [...rows].sort((p, q) => p.finished_at!.getTime() - q.finished_at!.getTime()).map((r) => r.id);
    // B got the slot A's first download freed: second to finish, ahead of A's four others.
    expect(order.indexOf(b)).toBe(1);
    // A's jobs that waited were served by priority (lower first): enqueued last, served first.
    const waitedA = order.filter((id) => id !== b).slice(1);
    const priorityOf = (id: string) => rows.find((r) => r.id === id)!.priority!;
    expect(waitedA.map(priorityOf)).toEqual([...waitedA.map(priorityOf)].sort((p, q) => p - q));
    expect(h.sim.counters().peakConcurrentDownloads).toBe(1);
  });
});

describe('the monthly transfer budget', () => {
  let h: PipelineHarness;
  const workers: SpawnedWorker[] = [];

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    if (h) await h.close();
  });

  it('exhausted: downloads wait (upstream_budget), cached jobs complete, downloads resume when the window frees', async () => {
    // Find the sizes first: a budget that holds either band alone, not both.
    h = await startPipelineHarness({ env: { WAITER_FALLBACK_DELAY_MS: '300' } });
    const [first, second] = [await h.upstreamFile(L2A, 'B04'), await h.upstreamFile(L1C, 'B04')];
    await h.close();
    const budget = Math.max(first.size, second.size) + 1_000;
    expect(first.size + second.size).toBeGreaterThan(budget);
    h = await startPipelineHarness({ env: { WAITER_FALLBACK_DELAY_MS: '300', UPSTREAM_MONTHLY_BYTES: String(budget) } });
    workers.push(h.spawnWorker());

    const one = await h.enqueue({ tenant_id: 'budget-a', scene_id: L2A, bands: ['B04'] }).then((r) => r.body.job_id!);
    expect((await h.waitForJobs([one], 30_000))[0]).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    const window = await sql<{ bytes: string }>`SELECT sum(bytes)::text AS bytes FROM upstream_transfers`.execute(h.db);
    expect(Number(window.rows[0]!.bytes)).toBe(first.size);

    // A new product's band does not fit: it waits, and says why.
    const waiting = await h.enqueue({ tenant_id: 'budget-b', scene_id: L1C, bands: ['B04'] }).then((r) => r.body.job_id!);
    await until('the download to wait for the budget', async () => (await findJobById(h.db, waiting))?.waiting_for === 'upstream_budget', 20_000);
    const view = await fetch(`${h.apiUrl}/v1/downloads/${waiting}`).then((r) => r.json() as Promise<{ status: string; waiting_for: string | null }>);
    expect(view).toMatchObject({ status: 'queued', waiting_for: 'upstream_budget' });

    // A cached job goes on meanwhile.
    const cached = await h.enqueue({ tenant_id: 'budget-c', scene_id: L2A, bands: ['B04'] }).then((r) => r.body.job_id!);
    expect((await h.waitForJobs([cached], 20_000))[0]).toMatchObject({ status: 'completed', cache_status: 'reused', bytes_downloaded: 0 });
    expect(h.completedDownloads(L1C, 'B04')).toBe(0);
    expect((await findJobById(h.db, waiting))?.status).toBe('queued');

    // The window slides past the first download: the waiting download resumes and completes.
    await sql`UPDATE upstream_transfers SET started_at = now() - interval '31 days'`.execute(h.db);
    const [row] = await h.waitForJobs([waiting], 30_000);
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', attempts: 1, waiting_for: null });
    expect(row!.waits).toBeGreaterThanOrEqual(1);
    expect(h.completedDownloads(L1C, 'B04')).toBe(1);
  });
});

describe('adoption after an invalidation', () => {
  let h: PipelineHarness;
  const workers: SpawnedWorker[] = [];

  beforeAll(async () => {
    h = await startPipelineHarness();
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    if (h) await h.close();
  });

  it('an object stored after the invalidation but not registered (worker killed) is adopted by the retry, not downloaded again', async () => {
    const bands = ['B02', 'B03'];
    const warm = h.spawnWorker();
    workers.push(warm);
    const first = await h.enqueue({ tenant_id: 'adopt-first', scene_id: OTHER, bands }).then((r) => r.body.job_id!);
    expect((await h.waitForJobs([first], 30_000))[0]).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    await warm.kill();
    // The seed's "mark invalid" SQL.
    await sql`UPDATE global_scene_cache SET is_valid = false, updated_at = now() WHERE scene_id = ${OTHER}`.execute(h.db);

    const killed = h.spawnWorker({ FAILPOINTS: 'bands-stored=pause' });
    workers.push(killed);
    const id = await h.enqueue({ tenant_id: 'adopt-retry', scene_id: OTHER, bands }).then((r) => r.body.job_id!);
    await until('both bands stored again', () => killed.logs.filter((l) => l.msg === 'failpoint reached' && l.failpoint === 'bands-stored').length === bands.length, 30_000);
    for (const band of bands) expect(h.completedDownloads(OTHER, band)).toBe(2);
    // The reset emptied the row; nothing registered yet.
    expect(await findScene(h.db, OTHER)).toMatchObject({ is_valid: true, bands: {} });
    await killed.kill();

    const retry = h.spawnWorker();
    workers.push(retry);
    const [row] = await h.waitForJobs([id], 40_000);
    // The retry adopted both objects: no third download, and the job counts the bytes it fetched.
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: bands, bands_reused: [] });
    for (const band of bands) expect(h.completedDownloads(OTHER, band)).toBe(2);
    expect(retry.logs.filter((l) => l.msg === 'adopting a verified object left by an earlier attempt')).toHaveLength(bands.length);
    const sizes = await Promise.all(bands.map((b) => h.upstreamFile(OTHER, b).then((f) => f.size)));
    expect(row!.bytes_downloaded).toBe(sizes[0]! + sizes[1]!);
    expect(Object.keys((await findScene(h.db, OTHER))!.bands).sort()).toEqual(bands);
  });
});
