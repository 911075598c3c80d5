/**
 * Issue 3, failure 4 — the global bucket changes behind our back. On real services (Postgres,
 * Redis, s3rver, cdse-sim), jobs enqueued through the API and run by a worker. What it proves:
 *
 * - a registered object deleted from the global bucket, or overwritten with fewer bytes (its
 *   metadata kept, so only the size gives it away), is caught by the next job — another tenant's —
 *   through the HEAD size check: the band is dropped from the cache row and downloaded again (the
 *   sim sees a second complete download of that band and only one of the others), the job reports
 *   `downloaded` with that band in `bands_downloaded`, and the object is whole again in both buckets;
 * - the seed's "mark invalid" SQL, run verbatim, makes the next job download the scene's bands
 *   again from upstream (objects still in the bucket are not trusted), and the re-registered row is
 *   valid and describes only what was just verified.
 */
import { Readable } from 'node:stream';
import { sql } from 'kysely';
import { parseProductName, sceneStoragePath, type SafeFile } from '@scenecache/core';
import { findScene, type DownloadJobRow } from '@scenecache/db';
import { sha3Of } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

/** One product per test, so no test sees another's downloads or cache rows. */
const DELETED = 'S2B_MSIL2A_20201007T131939_N0214_R124_T28XEK_20201007T160755';
const TRUNCATED = 'S2B_MSIL2A_20201007T121649_N0214_R123_T23FQB_20201007T160401';
const INVALIDATED = 'S2A_MSIL1C_20170413T104021_N0204_R008_T31SCA_20170413T104021';

/** The seed's monitoring SQL to mark a scene invalid, verbatim. */
const SEED_MARK_INVALID = 'UPDATE global_scene_cache SET is_valid = false WHERE scene_id = $1';

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('the global bucket changes behind our back', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness();
    await h.startWorker();
  });
  afterAll(async () => {
    await h?.close();
  });

  function globalKey(scene: string, file: SafeFile): string {
    return `${sceneStoragePath(parseProductName(scene))}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
  }

  async function run(body: Record<string, unknown>): Promise<DownloadJobRow> {
    const res = await h.enqueue(body);
    expect(res.status).toBe(202);
    const [row] = await h.waitForJobs([res.body.job_id!]);
    return row!;
  }

  /** `band` is whole and byte-identical to upstream in the global bucket and in `tenant`'s bucket. */
  async function expectWholeEverywhere(scene: string, band: string, tenant: string): Promise<void> {
    const file = await h.upstreamFile(scene, band);
    const truth = await sha3Of(h.sim.fileBytes(scene, file.path));
    expect(truth).toEqual({ sha3: file.sha3_256, bytes: file.size });
    const key = globalKey(scene, file);
    for (const bucket of [h.settings.globalBucket, `${h.settings.tenantBucketPrefix}${tenant}`]) {
      expect(await sha3Of(await h.s3.store.getObjectStream(bucket, key))).toEqual(truth);
    }
  }

  /** Tenant `first` caches `bands` of `scene`; returns the row and the registered entries. */
  async function seed(scene: string, first: string, bands: string[]) {
    const row = await run({ tenant_id: first, scene_id: scene, bands });
    expect(row).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: bands });
    for (const band of bands) expect(h.completedDownloads(scene, band)).toBe(1);
    const cached = await findScene(h.db, scene);
    expect(cached?.is_valid).toBe(true);
    return cached!;
  }

  it.each([
    [
      'deleted',
      DELETED,
      async (key: string) => {
        await h.s3.store.deleteObject(h.settings.globalBucket, key);
        expect(await h.s3.store.headObject(h.settings.globalBucket, key)).toBeUndefined();
      },
    ],
    [
      'truncated',
      TRUNCATED,
      async (key: string, file: SafeFile) => {
        // Overwrite with the first half of its bytes, metadata (the verified SHA3) kept: only
        // the size check can tell.
        const head = await h.s3.store.headObject(h.settings.globalBucket, key);
        const bytes = (await readAll(await h.s3.store.getObjectStream(h.settings.globalBucket, key))).subarray(0, Math.floor(file.size / 2));
        await h.s3.store.uploadStream({ bucket: h.settings.globalBucket, key, body: Readable.from([bytes]), contentLength: bytes.length, metadata: head!.metadata });
        expect(await h.s3.store.headObject(h.settings.globalBucket, key)).toMatchObject({ size: bytes.length, metadata: head!.metadata });
      },
    ],
  ] as const)('a registered object %s in the global bucket is detected by the next job and downloaded again', async (what, scene, damage) => {
    const first = `${what}-first`;
    const next = `${what}-next`;
    const cachedBefore = await seed(scene, first, ['B04', 'B08']);
    const b04 = await h.upstreamFile(scene, 'B04');
    const b08 = await h.upstreamFile(scene, 'B08');
    const key = globalKey(scene, b04);
    expect(cachedBefore.bands.B04?.key).toBe(key);

    await damage(key, b04);
    const row = await run({ tenant_id: next, scene_id: scene, bands: ['B04', 'B08'] });

    expect(row).toMatchObject({
      status: 'completed',
      cache_status: 'downloaded',
      bands_downloaded: ['B04'],
      bands_reused: ['B08'],
      bytes_downloaded: b04.size,
      bytes_copied: b04.size + b08.size,
      attempts: 1,
      error_code: null,
    });
    // Exactly one more upstream download, of the damaged band only.
    expect(h.completedDownloads(scene, 'B04')).toBe(2);
    expect(h.completedDownloads(scene, 'B08')).toBe(1);
    expect(h.sim.counters().products[scene]?.completed).toBe(3);
    // The row describes the new object: valid, re-registered B04, B08 untouched and reused once.
    const cached = await findScene(h.db, scene);
    expect(cached).toMatchObject({ is_valid: true, download_count: 1, total_bytes: b04.size + b08.size });
    expect(cached!.bands.B04).toMatchObject({ key, size: b04.size, sha3_256: b04.sha3_256 });
    expect(cached!.bands.B04!.registered_at).not.toBe(cachedBefore.bands.B04!.registered_at);
    expect(cached!.bands.B08).toEqual(cachedBefore.bands.B08);
    await expectWholeEverywhere(scene, 'B04', next);
    await expectWholeEverywhere(scene, 'B08', next);
    // The first tenant's own copy was never touched.
    await expectWholeEverywhere(scene, 'B04', first);
  });

  it("the seed's mark-invalid SQL, run verbatim, makes the next job download the scene again", async () => {
    const scene = INVALIDATED;
    const cachedBefore = await seed(scene, 'seed-first', ['B02', 'B03', 'B04']);
    const b02 = await h.upstreamFile(scene, 'B02');
    const b03 = await h.upstreamFile(scene, 'B03');

    const mark = sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id = ${scene}`;
    expect(mark.compile(h.db).sql).toBe(SEED_MARK_INVALID);
    expect((await mark.execute(h.db)).numAffectedRows).toBe(1n);
    expect((await findScene(h.db, scene))?.is_valid).toBe(false);
    // The objects are still there, whole: only the row says they are not to be trusted.
    expect(await h.s3.store.headObject(h.settings.globalBucket, globalKey(scene, b02))).toMatchObject({ size: b02.size });

    const row = await run({ tenant_id: 'seed-next', scene_id: scene, bands: ['B02', 'B03'] });

    expect(row).toMatchObject({
      status: 'completed',
      cache_status: 'downloaded',
      bands_downloaded: ['B02', 'B03'],
      bands_reused: [],
      bytes_downloaded: b02.size + b03.size,
      attempts: 1,
      error_code: null,
    });
    expect(h.completedDownloads(scene, 'B02')).toBe(2);
    expect(h.completedDownloads(scene, 'B03')).toBe(2);
    expect(h.completedDownloads(scene, 'B04')).toBe(1);
    // Re-registered: valid again, and only the bands just verified (B04 was not re-checked).
    const cached = await findScene(h.db, scene);
    expect(cached).toMatchObject({ is_valid: true, download_count: 0, total_bytes: b02.size + b03.size });
    expect(Object.keys(cached!.bands).sort()).toEqual(['B02', 'B03']);
    expect(cached!.bands.B02!.registered_at).not.toBe(cachedBefore.bands.B02!.registered_at);
    // B04's untrusted object is gone with its entry: the bucket holds only what the row describes.
    const b04Key = cachedBefore.bands.B04!.key;
    expect(await h.s3.store.headObject(h.settings.globalBucket, b04Key)).toBeUndefined();
    expect((await h.s3.store.listKeys(h.settings.globalBucket, sceneStoragePath(parseProductName(scene)))).sort()).toEqual(
      [cached!.bands.B02!.key, cached!.bands.B03!.key].sort(),
    );
    await expectWholeEverywhere(scene, 'B02', 'seed-next');
    await expectWholeEverywhere(scene, 'B03', 'seed-next');

    // B04, dropped with the invalidation, comes from upstream again on the next request.
    const third = await run({ tenant_id: 'seed-third', scene_id: scene, bands: ['B02', 'B04'] });
    expect(third).toMatchObject({ status: 'completed', cache_status: 'downloaded', bands_downloaded: ['B04'], bands_reused: ['B02'] });
    expect(h.completedDownloads(scene, 'B04')).toBe(2);
    expect(h.completedDownloads(scene, 'B02')).toBe(2);
  });
});
