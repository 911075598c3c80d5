/**
 * Issue 3, failure 1: a worker process SIGKILLed at any point of a job loses no job, leaves no lock
 * behind and registers nothing that is not whole and verified, on real services (Postgres, Redis,
 * s3rver, cdse-sim) with spawned `apps/worker/dist/main.js` processes.
 *
 * One test per point: holding the scene lock before any download (`scene-locked`), mid-upload
 * (a multipart part already stored), after the upload but before registering (`bands-stored`),
 * mid-fan-out (`tenant-copied`), and a job that survives two kills. Each proves:
 * - the scene's advisory lock was held by the worker's lock connection right before the kill
 *   (except mid-fan-out, where the pipeline has already released it) and is gone within 2 s of
 *   the process exiting (`pg_locks`);
 * - nothing half-written is registered, and after a clean worker completes the job
 *   (`download_jobs` completed, right `cache_status`) every registered object is whole (HEAD size =
 *   registered size, bytes' SHA3-256 = the manifest's), the global bucket holds nothing else for
 *   the scene, the tenant's objects are byte-identical to upstream, and the simulator completed
 *   each (product, band) download exactly once.
 */
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { findBandFile, parseProductName, resolveBand, sceneStoragePath, type SafeFile } from '@scenecache/core';
import { findScene, type DownloadJobRow } from '@scenecache/db';
import { DEFAULT_UPLOAD_PART_SIZE_BYTES } from '@scenecache/storage';
import { heldAdvisoryLocks, sha3Of, until } from '@scenecache/testing';
import { startPipelineHarness, type LogLine, type PipelineHarness, type SpawnedWorker } from './pipeline-harness.js';

/** What the sim serves for one requested band. */
interface Upstream {
  band: string;
  file: SafeFile;
  /** Object key in the global (and tenant) bucket. */
  key: string;
}

/** A granted advisory lock in this test's database. */
const FAILPOINT_REACHED = 'failpoint reached';
const ADOPTED = 'adopting a verified object left by an earlier attempt';

function sizeOf(upstream: readonly Upstream[]): number {
  return upstream.reduce((sum, u) => sum + u.file.size, 0);
}

describe('a worker killed at any point', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    // Band files at a tenth of their real size: a 10 m band (~12 MB) spans more than one 8 MiB part.
    // A shorter job lock than the harness's 4 s: a killed worker's job comes back within ~3 s.
    h = await startPipelineHarness({ simOptions: { sizeScale: 0.1 }, env: { JOB_LOCK_DURATION_MS: '2500', JOB_STALLED_INTERVAL_MS: '500' } });
  });
  afterEach(async () => {
    // An idle worker left running would take the next test's job before its failpoint worker.
    await h.killSpawnedWorkers();
  });
  afterAll(async () => {
    // `h` is unset when beforeAll failed; report that failure, not a TypeError here.
    if (h) await h.close();
  });

  /**
   * Spawn a worker. A test starts the worker that will take the job over while the job is still
   * held by the one it is about to kill, so the new process's start overlaps the stalled check.
   */
  function spawn(env: Record<string, string> = {}): SpawnedWorker {
    return h.spawnWorker(env);
  }

  function failpointReached(name: string): (line: LogLine) => boolean {
    return (line) => line.msg === FAILPOINT_REACHED && line.failpoint === name;
  }

  /** Resolves once `w` has reached failpoint `name` `times` times (per-band failpoints: once per band in flight). */
  async function failpointReachedTimes(w: SpawnedWorker, name: string, times: number): Promise<void> {
    await until(`${name} reached ${times} times`, () => w.logs.filter(failpointReached(name)).length >= times, 30_000);
  }

  async function upstreamOf(product: string, bands: readonly string[]): Promise<Upstream[]> {
    const p = parseProductName(product);
    const files = await h.sim.productFiles(product);
    return bands.map((band) => {
      const file = findBandFile(files, resolveBand(p.level, band));
      if (!file) throw new Error(`the sim serves no ${band} file for ${product}`);
      return { band, file, key: `${sceneStoragePath(p)}/${file.path.slice(file.path.lastIndexOf('/') + 1)}` };
    });
  }

  const advisoryLocks = () => heldAdvisoryLocks(h.db);

  async function sceneLockKey(product: string): Promise<string> {
    const res = await sql<{ key: string }>`SELECT hashtextextended(${`scene:${product}`}, 0)::text AS key`.execute(h.db);
    return res.rows[0]!.key;
  }

  /** The scene lock is held right now, by one session of the lock pool. */
  async function expectSceneLockHeld(product: string): Promise<void> {
    const key = await sceneLockKey(product);
    const holders = (await advisoryLocks()).filter((l) => l.key === key);
    expect(holders).toHaveLength(1);
    expect(holders[0]!.application_name).toBe('scenecache-locks');
  }

  /** SIGKILL `w`, then: its advisory locks disappear within 2 s of its exit. */
  async function killAndExpectLocksGone(w: SpawnedWorker): Promise<void> {
    const exit = await w.kill('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    const exitedAt = Date.now();
    await until('the dead worker\'s advisory locks to disappear', async () => ((await advisoryLocks()).length === 0 ? true : undefined), 2_000);
    expect(Date.now() - exitedAt).toBeLessThanOrEqual(2_000);
  }

  async function enqueue(tenant: string, product: string, bands: readonly string[]): Promise<string> {
    const res = await h.enqueue({ tenant_id: tenant, scene_id: product, bands });
    expect(res.status).toBe(202);
    return res.body.job_id!;
  }

  /**
   * The job completed on `finisher`, and everything it left is whole: the cache row describes
   * exactly the scene's objects in the global bucket, each whole and verified; the tenant's copies
   * are byte-identical to upstream; each band was completed upstream exactly once.
   */
  async function expectCompletedWhole(
    jobId: string,
    opts: { tenant: string; product: string; bands: readonly string[]; cacheStatus: 'downloaded' | 'reused'; finisher: SpawnedWorker },
  ): Promise<DownloadJobRow> {
    const { tenant, product, bands } = opts;
    const [row] = await h.waitForJobs([jobId], 40_000);
    expect(row).toMatchObject({ status: 'completed', cache_status: opts.cacheStatus, error_code: null, tenant_id: tenant, scene_id: product });
    expect(row!.worker_id).toMatch(new RegExp(`:${opts.finisher.pid}$`));
    expect([...row!.bands_downloaded, ...row!.bands_reused].sort()).toEqual([...bands].sort());

    const upstream = await upstreamOf(product, bands);
    const cache = await findScene(h.db, product);
    expect(cache?.is_valid).toBe(true);
    expect(Object.keys(cache!.bands).sort()).toEqual([...bands].sort());
    const tenantBucket = `${h.settings.tenantBucketPrefix}${tenant}`;
    for (const { band, file, key } of upstream) {
      const entry = cache!.bands[band]!;
      expect(entry).toMatchObject({ key, size: file.size, sha3_256: file.sha3_256 });
      const head = await h.s3.store.headObject(h.settings.globalBucket, key);
      expect(head?.size).toBe(entry.size);
      const expected = await sha3Of(h.sim.fileBytes(product, file.path));
      expect(expected).toEqual({ sha3: file.sha3_256, bytes: file.size });
      expect(await sha3Of(await h.s3.store.getObjectStream(h.settings.globalBucket, key))).toEqual(expected);
      expect(row!.objects![band]).toBe(`s3://${tenantBucket}/${key}`);
      expect(await sha3Of(await h.s3.store.getObjectStream(tenantBucket, key))).toEqual(expected);
      expect(h.sim.downloadsOf(product, resolveBand(parseProductName(product).level, band).fileSuffix).completed).toBe(1);
    }
    // Nothing in the global bucket for this scene that the table does not describe.
    const keys = await h.s3.store.listKeys(h.settings.globalBucket, sceneStoragePath(parseProductName(product)));
    expect(keys.sort()).toEqual(upstream.map((u) => u.key).sort());
    expect(await advisoryLocks()).toEqual([]);
    return row!;
  }

  /**
   * Multipart parts s3rver has fully stored for uploads into `bucket` (its filesystem store keeps
   * each part as `<dir>/<bucket>/._S3rver_uploads/<uploadId>/<n>` and writes `<n>.md5` once the
   * part is whole). `undefined` when S3 is not the embedded s3rver of this process.
   */
  async function storedParts(bucket: string): Promise<number | undefined> {
    if (!h.s3.embedded) return undefined;
    let n = 0;
    for (const dir of (await readdir(tmpdir())).filter((d) => d.startsWith('scenecache-s3-'))) {
      const uploads = join(tmpdir(), dir, bucket, '._S3rver_uploads');
      const ids = await readdir(uploads).catch(() => [] as string[]);
      for (const id of ids) n += (await readdir(join(uploads, id)).catch(() => [] as string[])).filter((f) => f.endsWith('.md5')).length;
    }
    return n;
  }

  it('holding the scene lock, before any download: the lock dies with the process, a clean worker downloads each band once', async () => {
    const product = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
    const bands = ['B05', 'B01'];
    const jobId = await enqueue('kill-locked', product, bands);
    const w1 = spawn({ FAILPOINTS: 'scene-locked=pause' });
    await w1.waitForLog(failpointReached('scene-locked'));
    const w2 = spawn();

    expect(h.sim.downloadsOf(product).started).toBe(0);
    await expectSceneLockHeld(product);
    await killAndExpectLocksGone(w1);
    expect(await findScene(h.db, product)).toBeUndefined();

    await expectCompletedWhole(jobId, { tenant: 'kill-locked', product, bands, cacheStatus: 'downloaded', finisher: w2 });
    expect(h.sim.downloadsOf(product).started).toBe(bands.length);
  });

  it('mid-upload (a multipart part already stored): nothing registered or visible at the key; the retry downloads it whole once', async () => {
    const product = 'S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454';
    const bands = ['B04'];
    const suffix = resolveBand('L2A', 'B04').fileSuffix;
    const [{ file, key }] = (await upstreamOf(product, bands)) as [Upstream];
    // More than one part: otherwise lib-storage sends a single PutObject at the end.
    expect(file.size).toBeGreaterThan(DEFAULT_UPLOAD_PART_SIZE_BYTES + 2 * 1024 * 1024);
    // Only the first download is slow (~5 s), so there is time to kill it mid-stream.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 2_500_000, product, file: suffix, count: 1 });
    const jobId = await enqueue('kill-upload', product, bands);
    const w1 = spawn();
    await w1.waitForLog((l) => l.msg === 'downloading from upstream');
    // The job is w1's now; w2 starts meanwhile and stays idle until the job comes back.
    const w2 = spawn();

    const fileKey = `${product}/${file.path}`;
    const sent = () => h.sim.counters().files[fileKey]?.bytes ?? 0;
    // Mid-upload: at least one whole part in S3 (s3rver: its part file is complete; another S3:
    // a part's worth and 1 MiB more sent), and the upstream file not yet complete.
    await until(
      'a stored part of the band upload',
      async () => {
        const parts = await storedParts(h.settings.globalBucket);
        return (parts === undefined ? sent() > DEFAULT_UPLOAD_PART_SIZE_BYTES + 1024 * 1024 : parts >= 1) ? true : undefined;
      },
      30_000,
    );
    expect(sent()).toBeLessThan(file.size);
    await expectSceneLockHeld(product);
    await killAndExpectLocksGone(w1);

    // Whole and verified, or not at all: the parts are not an object, and nothing is registered.
    expect(h.sim.downloadsOf(product, suffix)).toMatchObject({ started: 1, completed: 0 });
    expect(await h.s3.store.headObject(h.settings.globalBucket, key)).toBeUndefined();
    expect(await findScene(h.db, product)).toBeUndefined();

    await expectCompletedWhole(jobId, { tenant: 'kill-upload', product, bands, cacheStatus: 'downloaded', finisher: w2 });
    expect(h.sim.downloadsOf(product, suffix)).toMatchObject({ started: 2, completed: 1 });
  });

  it('after the upload, before registering: the retry adopts the verified objects instead of downloading them again', async () => {
    const product = 'S2B_MSIL2A_20230209T055009_N0509_R048_T43SBB_20230209T084058';
    const bands = ['B05', 'B01'];
    const upstream = await upstreamOf(product, bands);
    const jobId = await enqueue('kill-stored', product, bands);
    const w1 = spawn({ FAILPOINTS: 'bands-stored=pause' });
    // Both bands stream at once; each stops once it is stored.
    await failpointReachedTimes(w1, 'bands-stored', bands.length);
    const w2 = spawn();

    // Whole and verified in the bucket (SHA3-256 in the metadata), not registered.
    for (const { file, key } of upstream) {
      expect(await h.s3.store.headObject(h.settings.globalBucket, key)).toMatchObject({ size: file.size, metadata: { 'sha3-256': file.sha3_256 } });
    }
    expect(await findScene(h.db, product)).toBeUndefined();
    await expectSceneLockHeld(product);
    await killAndExpectLocksGone(w1);

    const row = await expectCompletedWhole(jobId, { tenant: 'kill-stored', product, bands, cacheStatus: 'downloaded', finisher: w2 });
    expect(w2.logs.filter((l) => l.msg === ADOPTED)).toHaveLength(bands.length);
    // One upstream download per band, the killed worker's: none started again.
    expect(h.sim.downloadsOf(product)).toMatchObject({ started: bands.length, completed: bands.length });
    expect(row).toMatchObject({ bands_downloaded: bands, bands_reused: [], bytes_downloaded: sizeOf(upstream) });
  });

  it('mid-fan-out: the lock is already released; the retry finishes the tenant copies without touching upstream', async () => {
    const product = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';
    const bands = ['B01', 'B05', 'B09'];
    const upstream = await upstreamOf(product, bands);
    const jobId = await enqueue('kill-fanout', product, bands);
    const w1 = spawn({ FAILPOINTS: 'tenant-copied=pause' });
    await w1.waitForLog(failpointReached('tenant-copied'));
    const w2 = spawn();

    // Registered; lock and slot released before the fan-out; at least one tenant copy made.
    const cache = await findScene(h.db, product);
    expect(Object.keys(cache?.bands ?? {}).sort()).toEqual([...bands].sort());
    expect((await h.s3.store.listKeys(`${h.settings.tenantBucketPrefix}kill-fanout`)).length).toBeGreaterThanOrEqual(1);
    expect(await advisoryLocks()).toEqual([]);
    await killAndExpectLocksGone(w1);

    const row = await expectCompletedWhole(jobId, { tenant: 'kill-fanout', product, bands, cacheStatus: 'downloaded', finisher: w2 });
    expect(h.sim.downloadsOf(product)).toMatchObject({ started: bands.length, completed: bands.length });
    // This job's first attempt fetched the bands: downloaded, not a cache hit of its own download.
    expect(row).toMatchObject({ bands_downloaded: bands, bands_reused: [], bytes_downloaded: sizeOf(upstream) });
    expect((await findScene(h.db, product))!.download_count).toBe(0);
  });

  it('a job survives two kills: two workers killed at the same point, a third completes it', async () => {
    const product = 'S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022157';
    const bands = ['B05', 'B01'];
    const jobId = await enqueue('kill-twice', product, bands);

    const w1 = spawn({ FAILPOINTS: 'bands-stored=pause' });
    await failpointReachedTimes(w1, 'bands-stored', bands.length);
    // The stalled job comes back to a second worker, armed too: it adopts the objects and is killed.
    const w2 = spawn({ FAILPOINTS: 'bands-stored=pause' });
    await expectSceneLockHeld(product);
    await killAndExpectLocksGone(w1);

    await failpointReachedTimes(w2, 'bands-stored', bands.length);
    expect(w2.logs.filter((l) => l.msg === ADOPTED)).toHaveLength(bands.length);
    const w3 = spawn();
    expect(await findScene(h.db, product)).toBeUndefined();
    await expectSceneLockHeld(product);
    await killAndExpectLocksGone(w2);

    await expectCompletedWhole(jobId, { tenant: 'kill-twice', product, bands, cacheStatus: 'downloaded', finisher: w3 });
    expect(h.sim.downloadsOf(product)).toMatchObject({ started: bands.length, completed: bands.length });
    const job = await h.queue.getJob(jobId);
    expect(job?.stalledCounter).toBe(2);
  });
});
