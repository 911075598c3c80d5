/**
 * The pipeline end to end on real services (Postgres, Redis, s3rver, cdse-sim), one in-process
 * worker, jobs enqueued through the API: download, reuse, partial reuse (invalid input: bad-input.int.test.ts).
 */
import { findScene } from '@scenecache/db';
import { sha3Of } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const L1C = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';
const L2A = 'S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454';

describe('scene download pipeline', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness();
    await h.startWorker();
  });
  afterAll(async () => {
    await h.close();
  });

  async function run(body: Record<string, unknown>) {
    const res = await h.enqueue(body);
    expect(res.status).toBe(202);
    const [row] = await h.waitForJobs([res.body.job_id!]);
    return row!;
  }

  it('downloads a new product once: objects in both buckets, bytes equal to upstream, result complete', async () => {
    const row = await run({ tenant_id: 'alpha', scene_id: `${L1C}.SAFE`, bands: ['B04', 'B08'] });
    const files = { B04: await h.upstreamFile(L1C, 'B04'), B08: await h.upstreamFile(L1C, 'B08') };
    const total = files.B04.size + files.B08.size;
    expect(row).toMatchObject({
      status: 'completed',
      cache_status: 'downloaded',
      scene_id: L1C,
      tenant_id: 'alpha',
      bands_requested: ['B04', 'B08'],
      bands_downloaded: ['B04', 'B08'],
      bands_reused: [],
      bytes_downloaded: total,
      bytes_copied: total,
      attempts: 1,
      error_code: null,
    });
    expect(row.worker_id).toMatch(/:\d+$/);
    expect(row.started_at).toBeInstanceOf(Date);
    expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at!.getTime());
    expect(row.duration_ms).toBeGreaterThanOrEqual(0);
    expect(row.message).toMatch(/downloaded 2 band/);

    const tenantBucket = `${h.settings.tenantBucketPrefix}alpha`;
    for (const band of ['B04', 'B08'] as const) {
      const url = row.objects![band]!;
      expect(url.startsWith(`s3://${tenantBucket}/sentinel-2/L1C/46RER/2021/09/08/${L1C}/`)).toBe(true);
      const key = url.slice(`s3://${tenantBucket}/`.length);
      for (const bucket of [h.settings.globalBucket, tenantBucket]) {
        const got = await sha3Of(await h.s3.store.getObjectStream(bucket, key));
        expect(got).toEqual({ sha3: files[band].sha3_256, bytes: files[band].size });
      }
      expect(h.sim.downloadsOf(L1C, files[band].path.slice(files[band].path.lastIndexOf('/')))).toMatchObject({ started: 1, completed: 1 });
    }
    const cache = await findScene(h.db, L1C);
    expect(cache).toMatchObject({ is_valid: true, download_count: 0, storage_bucket: h.settings.globalBucket, product_level: 'L1C', tile: '46RER', sensing_date: '2021-09-08', total_bytes: total });
    expect(Object.keys(cache!.bands).sort()).toEqual(['B04', 'B08']);
    expect(cache!.bands.B04!.sha3_256).toBe(files.B04.sha3_256);

    // The BullMQ return value is the same result.
    const job = await h.queue.getJob(row.id);
    expect(job?.returnvalue).toMatchObject({ scene_id: L1C, tenant_id: 'alpha', cache_status: 'downloaded', bands_downloaded: ['B04', 'B08'], bytes_downloaded: total, objects: row.objects });
  });

  it('serves a second tenant from the cache: reused, zero upstream downloads, download_count + 1', async () => {
    const before = h.sim.counters();
    const row = await run({ tenant_id: 'bravo', scene_id: L1C, bands: ['B08', 'B04'] });
    expect(row).toMatchObject({ status: 'completed', cache_status: 'reused', bands_downloaded: [], bands_reused: ['B08', 'B04'], bytes_downloaded: 0 });
    expect(row.bytes_copied).toBeGreaterThan(0);
    const after = h.sim.counters();
    expect(after.totals.started).toBe(before.totals.started);
    expect(after.catalogueRequests).toBe(before.catalogueRequests);
    expect(after.manifestRequests).toBe(before.manifestRequests);
    expect((await findScene(h.db, L1C))!.download_count).toBe(1);
    expect((await findScene(h.db, L1C))!.last_accessed_at).toBeInstanceOf(Date);
    const key = row.objects!.B04!.slice(`s3://${h.settings.tenantBucketPrefix}bravo/`.length);
    expect(await h.s3.store.headObject(`${h.settings.tenantBucketPrefix}bravo`, key)).toMatchObject({ size: (await h.upstreamFile(L1C, 'B04')).size });
  });

  it('partial reuse: B04 cached, B02 new → downloaded, bands_reused=[B04], bands_downloaded=[B02]', async () => {
    const first = await run({ tenant_id: 'charlie', scene_id: L2A, bands: ['B04'] });
    expect(first.cache_status).toBe('downloaded');
    const row = await run({ tenant_id: 'delta', scene_id: L2A, bands: ['B04', 'B02'] });
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_reused: ['B04'], bands_downloaded: ['B02'] });
    const b02 = await h.upstreamFile(L2A, 'B02');
    expect(row.bytes_downloaded).toBe(b02.size);
    expect(b02.path).toMatch(/IMG_DATA\/R10m\/T29UNU_\d{8}T\d{6}_B02_10m\.jp2$/);
    for (const band of ['B04', 'B02']) {
      const f = await h.upstreamFile(L2A, band);
      expect(h.sim.downloadsOf(L2A, f.path.slice(f.path.lastIndexOf('/')))).toMatchObject({ completed: 1 });
    }
  });
  // Invalid input (API, batch items, raw job payloads): bad-input.int.test.ts.
});
