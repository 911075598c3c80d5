/**
 * Issue 3, failure 2: the scene lock's Postgres connection dies mid-download. On real services
 * (Postgres, Redis, s3rver, cdse-sim) with a spawned worker, the test finds the session holding
 * the scene's advisory lock (`pg_locks` + `pg_stat_activity`, application `scenecache-locks`) and
 * kills it with `pg_terminate_backend` while a band is streaming into a multipart upload (the
 * job's other band, streamed at the same time, is already registered). It proves that the holder
 * notices at once (its lease aborts), stops the upstream stream and its upload, registers nothing
 * more and stores no object of the interrupted band; that the worker process survives; and that
 * the job is handed back without spending an attempt (losing a lock is never the job's fault) and
 * its next run completes with whole, verified objects, the interrupted band having been started
 * twice upstream but completed once, the other band once.
 */
import { sql } from 'kysely';
import { findBandFile, parseProductName, resolveBand, sceneStoragePath } from '@scenecache/core';
import { findScene } from '@scenecache/db';
import { DEFAULT_UPLOAD_PART_SIZE_BYTES } from '@scenecache/storage';
import { heldAdvisoryLocks, sha3Of, until } from '@scenecache/testing';
import { startPipelineHarness, type LogLine, type PipelineHarness } from './pipeline-harness.js';

const PRODUCT = 'S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126';
/** Streamed at once: B02 (10 m, ~12 MB, slow the first time) and B05 (20 m, registered long before B02 is stored). */
const BANDS = ['B02', 'B05'];
const TENANT = 'lock-loss';
/** The hand-back's delay is 1–2× this: a window in which the first run's leftovers can be inspected. */
const BACKOFF_MS = 3_000;

describe('the scene lock connection dies mid-download', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    // A tenth of the real sizes: B02 (~12 MB) is a multipart upload of more than one 8 MiB part.
    h = await startPipelineHarness({ simOptions: { sizeScale: 0.1 }, env: { JOB_BACKOFF_MS: String(BACKOFF_MS) } });
  });
  afterAll(async () => {
    // `h` is unset when beforeAll failed; report that failure, not a TypeError here.
    if (h) await h.close();
  });

  const advisoryLocks = () => heldAdvisoryLocks(h.db);

  it('the holder aborts its upload and registers nothing more; the retry completes with each band downloaded whole once', async () => {
    const product = parseProductName(PRODUCT);
    const files = await h.sim.productFiles(PRODUCT);
    const upstream = BANDS.map((band) => {
      const b = resolveBand(product.level, band);
      const file = findBandFile(files, b)!;
      return { band, suffix: b.fileSuffix, file, key: `${sceneStoragePath(product)}/${file.path.slice(file.path.lastIndexOf('/') + 1)}` };
    });
    const b02 = upstream[0]!;
    expect(b02.file.size).toBeGreaterThan(DEFAULT_UPLOAD_PART_SIZE_BYTES + 2 * 1024 * 1024);
    // The first B02 download streams at 2 MB/s (~6 s), the retry at full speed.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 2_000_000, product: PRODUCT, file: b02.suffix, count: 1 });

    const res = await h.enqueue({ tenant_id: TENANT, scene_id: PRODUCT, bands: BANDS });
    expect(res.status).toBe(202);
    const jobId = res.body.job_id!;
    const worker = h.spawnWorker();

    // Mid-download, with a multipart part already handed to S3.
    const b02Key = `${PRODUCT}/${b02.file.path}`;
    const sent = (): number => h.sim.counters().files[b02Key]?.bytes ?? 0;
    await until('B02 to stream past its first part', () => (sent() > DEFAULT_UPLOAD_PART_SIZE_BYTES + 1024 * 1024 ? true : undefined), 30_000);
    // B05 streamed beside it at full speed and is registered by now.
    const b05 = upstream[1]!;
    await until('B05 to be registered', async () => ((await findScene(h.db, PRODUCT))?.bands.B05 ? true : undefined), 10_000);

    // The session holding the scene lock (and the upstream slot) is the worker's lock connection.
    const keyRes = await sql<{ key: string }>`SELECT hashtextextended(${`scene:${PRODUCT}`}, 0)::text AS key`.execute(h.db);
    const sceneKey = keyRes.rows[0]!.key;
    const holders = (await advisoryLocks()).filter((l) => l.key === sceneKey);
    expect(holders).toHaveLength(1);
    const { pid, application_name } = holders[0]!;
    expect(application_name).toBe('scenecache-locks');
    expect((await advisoryLocks()).filter((l) => l.pid === pid)).toHaveLength(3); // scene lock (shared) + band lock + upstream slot

    const terminated = await sql<{ ok: boolean }>`SELECT pg_terminate_backend(${pid}) AS ok`.execute(h.db);
    expect(terminated.rows[0]!.ok).toBe(true);
    const terminatedAt = Date.now();
    expect(sent()).toBeLessThan(b02.file.size);
    // The session's locks die with it.
    await until('the terminated session\'s locks to disappear', async () => ((await advisoryLocks()).some((l) => l.pid === pid) ? undefined : true), 2_000);

    // The holder notices (its lease aborts), and the job is handed back with lock_lost, no attempt spent.
    await worker.waitForLog((l) => l.msg === 'scene lock connection lost: the lock is gone', 5_000);
    const failed = await worker.waitForLog((l: LogLine) => l.msg === 'a dependency is unavailable; job delayed without spending an attempt', 10_000);
    expect(failed).toMatchObject({ jobId, err: { code: 'lock_lost' } });
    const failedAt = Date.now();
    expect(failedAt - terminatedAt).toBeLessThan(5_000);
    // It did not take a new lock on another connection: no advisory lock anywhere until the retry.
    expect(await advisoryLocks()).toEqual([]);

    // The upstream stream was stopped, not drained...
    await until('the aborted upstream stream to close', () => (h.sim.counters().currentConcurrentDownloads === 0 ? true : undefined), 2_000);
    expect(h.sim.downloadsOf(PRODUCT, b02.suffix)).toMatchObject({ started: 1, completed: 0 });
    expect(sent()).toBeLessThan(b02.file.size);
    // ...nothing of B02 registered and no object of it stored (B05, registered before, stays)...
    expect(Object.keys((await findScene(h.db, PRODUCT))!.bands)).toEqual(['B05']);
    expect(await h.s3.store.headObject(h.settings.globalBucket, b02.key)).toBeUndefined();
    expect(await h.s3.store.listKeys(h.settings.globalBucket, sceneStoragePath(product))).toEqual([b05.key]);
    // ...as seen before the next run (delayed at least BACKOFF_MS) began: it must download B02 before it can
    // register it, and it has not started that download yet.
    expect(h.sim.downloadsOf(PRODUCT).started).toBe(2);

    // The next run (still attempt 1) completes.
    const [row] = await h.waitForJobs([jobId], 40_000);
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', attempts: 1, error_code: null, bands_downloaded: BANDS, bands_reused: [] });
    expect(worker.logs.filter((l) => l.msg === 'scene lock connection lost: the lock is gone')).toHaveLength(1);

    const cache = await findScene(h.db, PRODUCT);
    expect(Object.keys(cache!.bands).sort()).toEqual([...BANDS].sort());
    const tenantBucket = `${h.settings.tenantBucketPrefix}${TENANT}`;
    for (const { band, suffix, file, key } of upstream) {
      const entry = cache!.bands[band]!;
      expect(entry).toMatchObject({ key, size: file.size, sha3_256: file.sha3_256 });
      // B02 registered by the next run, after the first was handed back; B05 by the first run, before.
      if (band === 'B02') expect(new Date(entry.registered_at).getTime()).toBeGreaterThanOrEqual(failedAt - 1_000);
      else expect(new Date(entry.registered_at).getTime()).toBeLessThan(terminatedAt);
      expect(entry.job_id).toBe(jobId);
      expect((await h.s3.store.headObject(h.settings.globalBucket, key))?.size).toBe(file.size);
      const expected = await sha3Of(h.sim.fileBytes(PRODUCT, file.path));
      expect(expected).toEqual({ sha3: file.sha3_256, bytes: file.size });
      expect(await sha3Of(await h.s3.store.getObjectStream(h.settings.globalBucket, key))).toEqual(expected);
      expect(await sha3Of(await h.s3.store.getObjectStream(tenantBucket, key))).toEqual(expected);
      expect(h.sim.downloadsOf(PRODUCT, suffix).completed).toBe(1);
    }
    // The interrupted download was started again and completed once; the other band once.
    expect(h.sim.downloadsOf(PRODUCT, b02.suffix)).toMatchObject({ started: 2, completed: 1 });
    expect(h.sim.downloadsOf(PRODUCT, upstream[1]!.suffix)).toMatchObject({ started: 1, completed: 1 });
    expect((await h.s3.store.listKeys(h.settings.globalBucket, sceneStoragePath(product))).sort()).toEqual(upstream.map((u) => u.key).sort());
    expect(await advisoryLocks()).toEqual([]);
    // Losing a connection did not take the worker process down.
    expect(worker.child.exitCode).toBeNull();
    expect(worker.child.signalCode).toBeNull();
  });
});
