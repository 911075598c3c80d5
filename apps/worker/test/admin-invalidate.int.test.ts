/**
 * The cache admin routes end to end on real services (Postgres, Redis, s3rver, cdse-sim), one
 * in-process worker, jobs and admin calls through the real API. What it proves:
 *
 * - `POST /v1/admin/cache/invalidate {scene_id}`
 *   makes the next job download the product again: `cache_status: downloaded`, the sim serves
 *   every band a second time, the tenant gets bytes identical to upstream's, and the row is valid
 *   again — after a second job had reused the first download;
 * - invalidating one band re-downloads exactly that band:
 *   its object is deleted, so the worker cannot adopt it as a left-over upload, and the other
 *   bands are still reused;
 * - an invalidation that commits while a job downloads other bands of the same scene (under the
 *   scene lock, which invalidation does not take): the job's registration is refused, and the job
 *   runs again — it resets the product (deleting the objects the invalidated row described),
 *   adopts the band it had just stored and downloads the one it meant to reuse;
 * - the cleanup of an invalidated scene leaves neither row nor object of it, and the next job
 *   downloads it into a consistent cache.
 */
import { parseProductName, resolveBand, sceneStoragePath } from '@scenecache/core';
import { findScene, type DownloadJobRow } from '@scenecache/db';
import { sha3Of, until } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

/** One product per test, so no test sees another's downloads or rows. */
const WHOLE = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const BAND = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';
const CLEANED = 'S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454';
const RACED = 'S2B_MSIL1C_20240310T103649_N0510_R008_T31TCJ_20240310T123318';

describe('cache admin end to end', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness();
    await h.startWorker();
  });
  afterAll(async () => {
    await h?.close();
  });

  async function run(body: Record<string, unknown>): Promise<DownloadJobRow> {
    const res = await h.enqueue(body);
    expect(res.status).toBe(202);
    const [row] = await h.waitForJobs([res.body.job_id!]);
    return row!;
  }

  async function admin(baseUrl: string, path: string, json: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${baseUrl}/v1/admin${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** The tenant's copy of each band is byte-identical to what the sim serves. */
  async function expectTenantCopiesExact(scene: string, tenant: string, bands: readonly string[]): Promise<void> {
    const path = sceneStoragePath(parseProductName(scene));
    for (const band of bands) {
      const file = await h.upstreamFile(scene, band);
      const truth = await sha3Of(h.sim.fileBytes(scene, file.path));
      expect(truth).toEqual({ sha3: file.sha3_256, bytes: file.size });
      const key = `${path}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
      expect(await sha3Of(await h.s3.store.getObjectStream(`${h.settings.tenantBucketPrefix}${tenant}`, key))).toEqual(truth);
    }
  }

  it('downloaded, reused, invalidated through the API, downloaded again with identical bytes', async () => {
    const bands = ['B04', 'B08'];
    const first = await run({ tenant_id: 'first', scene_id: WHOLE, bands });
    expect(first).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: bands });
    for (const band of bands) expect(h.completedDownloads(WHOLE, band)).toBe(1);

    const second = await run({ tenant_id: 'second', scene_id: WHOLE, bands });
    expect(second).toMatchObject({ status: 'completed', cache_status: 'reused', bands_reused: bands, bytes_downloaded: 0 });
    for (const band of bands) expect(h.completedDownloads(WHOLE, band)).toBe(1);

    const invalidate = await admin(h.apiUrl, '/cache/invalidate', { scene_id: `${WHOLE}.SAFE` });
    expect(invalidate).toEqual({
      status: 200,
      body: { dry_run: false, invalidated: 1, bytes: first.bytes_downloaded, scenes: [WHOLE], scenes_truncated: false },
    });
    expect((await findScene(h.db, WHOLE))?.is_valid).toBe(false);

    const third = await run({ tenant_id: 'third', scene_id: WHOLE, bands });
    const sizes = (await h.upstreamFile(WHOLE, 'B04')).size + (await h.upstreamFile(WHOLE, 'B08')).size;
    expect(third).toMatchObject({
      status: 'completed',
      cache_status: 'downloaded',
      bands_downloaded: bands,
      bands_reused: [],
      bytes_downloaded: sizes,
      attempts: 1,
      error_code: null,
    });
    for (const band of bands) expect(h.completedDownloads(WHOLE, band)).toBe(2);
    await expectTenantCopiesExact(WHOLE, 'third', bands);
    // The earlier tenants' copies were never touched.
    await expectTenantCopiesExact(WHOLE, 'second', bands);
    const row = await findScene(h.db, WHOLE);
    expect(row).toMatchObject({ is_valid: true, total_bytes: sizes });
    expect(Object.keys(row!.bands).sort()).toEqual(bands);
    for (const band of bands) expect(row!.bands[band]!.job_id).toBe(third.id);
  });

  it('invalidating one band re-downloads that band only (its object is not adopted); the others are reused', async () => {
    const bands = ['B02', 'B03', 'B04'];
    const first = await run({ tenant_id: 'band-first', scene_id: BAND, bands });
    expect(first).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: bands });
    const b03 = await h.upstreamFile(BAND, 'B03');

    const invalidate = await admin(h.apiUrl, '/cache/invalidate', { scene_id: BAND, bands: ['B03'] });
    expect(invalidate).toMatchObject({ status: 200, body: { invalidated: 1, bytes: b03.size, bands: ['B03'], scenes: [BAND] } });
    const after = await findScene(h.db, BAND);
    expect(after?.is_valid).toBe(true);
    expect(Object.keys(after!.bands).sort()).toEqual(['B02', 'B04']);

    const next = await run({ tenant_id: 'band-next', scene_id: BAND, bands });
    expect(next).toMatchObject({
      status: 'completed',
      cache_status: 'downloaded',
      bands_downloaded: ['B03'],
      bands_reused: ['B02', 'B04'],
      bytes_downloaded: b03.size,
      attempts: 1,
    });
    expect(h.completedDownloads(BAND, 'B03')).toBe(2);
    expect(h.completedDownloads(BAND, 'B02')).toBe(1);
    expect(h.completedDownloads(BAND, 'B04')).toBe(1);
    await expectTenantCopiesExact(BAND, 'band-next', bands);
    expect(Object.keys((await findScene(h.db, BAND))!.bands).sort()).toEqual(bands);
  });

  it('cleanup removes an invalidated scene and its objects; the next job downloads it into a consistent cache', async () => {
    const bands = ['B02', 'SCL'];
    expect(await run({ tenant_id: 'clean-first', scene_id: CLEANED, bands })).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    const prefix = `${sceneStoragePath(parseProductName(CLEANED))}/`;
    expect(await h.s3.store.listKeys(h.settings.globalBucket, prefix)).toHaveLength(2);

    expect((await admin(h.apiUrl, '/cache/invalidate', { pattern: '*_T29UNU_*' })).body).toMatchObject({ invalidated: 1, scenes: [CLEANED] });
    const cleanup = await admin(h.apiUrl, '/cache/cleanup', { older_than_days: 0 });
    const sizes = (await h.upstreamFile(CLEANED, 'B02')).size + (await h.upstreamFile(CLEANED, 'SCL')).size;
    expect(cleanup).toMatchObject({ status: 200, body: { deleted: 1, scenes: [CLEANED], bytes_freed: sizes, objects_deleted: 2, skipped: [] } });
    expect(await findScene(h.db, CLEANED)).toBeUndefined();
    expect(await h.s3.store.listKeys(h.settings.globalBucket, prefix)).toEqual([]);

    const next = await run({ tenant_id: 'clean-next', scene_id: CLEANED, bands });
    expect(next).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: bands, attempts: 1 });
    for (const band of bands) expect(h.completedDownloads(CLEANED, band)).toBe(2);
    await expectTenantCopiesExact(CLEANED, 'clean-next', bands);
    const row = await findScene(h.db, CLEANED);
    expect((await h.s3.store.listKeys(h.settings.globalBucket, prefix)).sort()).toEqual(Object.values(row!.bands).map((b) => b.key).sort());
  });

  it('an invalidation during another band\'s download: the job runs again, resets the product, adopts what it stored and downloads the rest again', async () => {
    const first = await run({ tenant_id: 'race-first', scene_id: RACED, bands: ['B02'] });
    expect(first).toMatchObject({ status: 'completed', cache_status: 'downloaded' });
    const b02 = await h.upstreamFile(RACED, 'B02');
    const b02Key = (await findScene(h.db, RACED))!.bands.B02!.key;

    // B03 streams slowly, so the invalidation lands while the job holds the scene lock.
    const b03 = await h.upstreamFile(RACED, 'B03');
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: Math.max(1, Math.ceil(b03.size / 3)), product: RACED, file: resolveBand('L1C', 'B03').fileSuffix });
    const slow = await h.enqueue({ tenant_id: 'race-slow', scene_id: RACED, bands: ['B02', 'B03'] });
    expect(slow.status).toBe(202);
    await until('B03 download started', () => h.sim.downloadsOf(RACED, resolveBand('L1C', 'B03').fileSuffix).started >= 1, 20_000);
    expect(h.completedDownloads(RACED, 'B03')).toBe(0);
    expect((await admin(h.apiUrl, '/cache/invalidate', { scene_id: RACED })).body).toMatchObject({ invalidated: 1 });

    const [slowRow] = await h.waitForJobs([slow.body.job_id!]);
    // Registering B03 was refused (the row was invalid), so the job did not serve B02 from the row
    // it had read: it ran again (no attempt spent), reset the product (deleting B02's object),
    // adopted its own B03 upload (downloaded once) and downloaded B02 again.
    expect(slowRow).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B02', 'B03'], bands_reused: [], attempts: 1 });
    expect(h.completedDownloads(RACED, 'B02')).toBe(2);
    expect(h.completedDownloads(RACED, 'B03')).toBe(1);
    await expectTenantCopiesExact(RACED, 'race-slow', ['B02', 'B03']);
    const row = await findScene(h.db, RACED);
    expect(row).toMatchObject({ is_valid: true, total_bytes: b02.size + b03.size });
    expect(row!.bands.B02!.key).toBe(b02Key);
    expect(row!.bands.B02!.job_id).toBe(slowRow!.id);

    const next = await run({ tenant_id: 'race-next', scene_id: RACED, bands: ['B02', 'B03'] });
    expect(next).toMatchObject({ status: 'completed', cache_status: 'reused', bands_reused: ['B02', 'B03'], bytes_downloaded: 0 });
    expect(h.completedDownloads(RACED, 'B02')).toBe(2);
    expect(h.completedDownloads(RACED, 'B03')).toBe(1);
    await expectTenantCopiesExact(RACED, 'race-next', ['B02', 'B03']);
  });
});
