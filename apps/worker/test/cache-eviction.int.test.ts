/**
 * Issue 15 end to end: the global cache's maintenance beside a real worker (Postgres, Redis,
 * s3rver, cdse-sim, one in-process worker, jobs through the API).
 *
 * - A product evicted while a job is about to be served from it (it read the product as cached,
 *   the eviction deletes the objects before its copy) is downloaded again by that job — counted
 *   `downloaded`, the sim serving the band a second time, the tenant's copy byte-identical to
 *   upstream — without spending an attempt.
 * - A product a job is downloading (its scene lock held) is skipped by the maintenance, never
 *   touched under the download; the next run evicts it. A tenant's copies stay through eviction.
 */
import { parseProductName, resolveBand, sceneStoragePath, type Logger } from '@scenecache/core';
import { findScene, type DownloadJobRow } from '@scenecache/db';
import { CacheMaintenance } from '@scenecache/global-cache';
import { sha3Of, until } from '@scenecache/testing';
import type { CopyObjectInput } from '@scenecache/storage';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';
import type { WorkerRuntime } from '../src/worker-runtime.js';

const EVICTED = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const BUSY = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';

describe('cache eviction beside a worker', () => {
  let h: PipelineHarness;
  let rt: WorkerRuntime;
  let logger: Logger;

  beforeAll(async () => {
    // ~240 KB band files at 120 KB/s per connection: a download lasts about two seconds.
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: 120_000 } });
    rt = await h.startWorker();
    logger = rt.deps.logger;
  });
  afterAll(async () => {
    await h?.close();
  });

  /** The maintenance with a budget of one byte: every product not being downloaded is evicted. */
  const evictEverything = () => new CacheMaintenance({ db: h.db, store: h.s3.store, bucket: h.settings.globalBucket, maxBytes: 1, unusedTtlDays: undefined, invalidRetentionDays: 30, logger });

  async function run(body: Record<string, unknown>): Promise<DownloadJobRow> {
    const res = await h.enqueue(body);
    expect(res.status).toBe(202);
    const [row] = await h.waitForJobs([res.body.job_id!]);
    return row!;
  }

  it('a job whose cached product is evicted before its copy downloads it again, counted downloaded, no attempt spent', async () => {
    const first = await run({ tenant_id: 'alpha', scene_id: EVICTED, bands: ['B04'] });
    expect(first).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    expect(h.completedDownloads(EVICTED, 'B04')).toBe(1);

    // The next job reads B04 as cached; its first copy into beta's bucket finds the product evicted.
    const store = rt.deps.store;
    const copy = store.copyObject.bind(store);
    let evictions = 0;
    store.copyObject = async (input: CopyObjectInput) => {
      if (input.bucket.endsWith('beta') && evictions === 0) {
        const report = await evictEverything().run();
        evictions = report.evicted.products;
      }
      return copy(input);
    };
    try {
      const second = await run({ tenant_id: 'beta', scene_id: EVICTED, bands: ['B04'] });
      expect(evictions).toBe(1);
      expect(second).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B04'], bands_reused: [], attempts: 1 });
    } finally {
      store.copyObject = copy;
    }
    expect(h.completedDownloads(EVICTED, 'B04')).toBe(2);
    const row = await findScene(h.db, EVICTED);
    expect(Object.keys(row!.bands)).toEqual(['B04']);
    // beta's copy is upstream's bytes.
    const file = await h.upstreamFile(EVICTED, 'B04');
    const key = `${sceneStoragePath(parseProductName(EVICTED))}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
    expect(await sha3Of(await h.s3.store.getObjectStream(`${h.settings.tenantBucketPrefix}beta`, key))).toEqual({ sha3: file.sha3_256.toLowerCase(), bytes: file.size });
    // alpha's copy outlived the eviction.
    expect((await h.s3.store.headObject(`${h.settings.tenantBucketPrefix}alpha`, key))?.size).toBe(file.size);
  });

  it('skips a product while a job downloads it, and evicts it on the next run', async () => {
    expect(await run({ tenant_id: 'alpha', scene_id: BUSY, bands: ['B02'] })).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    const res = await h.enqueue({ tenant_id: 'alpha', scene_id: BUSY, bands: ['B04'] });
    const suffix = resolveBand(parseProductName(BUSY).level, 'B04').fileSuffix;
    await until('the B04 download to stream', () => h.sim.downloadsOf(BUSY, suffix).bytes > 0, 20_000);
    const during = await evictEverything().run();
    expect(during.skipped).toContain(BUSY);
    expect(during.evicted.sceneIds).not.toContain(BUSY);
    expect(Object.keys((await findScene(h.db, BUSY))!.bands)).toEqual(['B02']);

    const [done] = await h.waitForJobs([res.body.job_id!]);
    expect(done).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B04'], bands_reused: [] });
    expect(Object.keys((await findScene(h.db, BUSY))!.bands).sort()).toEqual(['B02', 'B04']);
    const after = await evictEverything().run();
    expect(after.evicted.sceneIds).toEqual([BUSY]);
    expect(after.skipped).toEqual([]);
    expect(await findScene(h.db, BUSY)).toBeUndefined();
    expect((await h.s3.store.listKeys(h.settings.globalBucket)).filter((k) => k.includes(BUSY))).toEqual([]);
  });
});
