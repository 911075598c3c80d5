/**
 * A freed upstream slot wakes one slot waiter (the fairest: here both wait unserved, so the oldest), not all of them; the woken waiter
 * holds the slot's baton. If it no longer needs the slot, here because another fleet registered
 * its bands while it waited, it must pass the wake-up on at once. Otherwise the slot would sit
 * idle until the next waiter's fallback delay, which this test sets to 5 minutes so that only the
 * hand-off can finish in time.
 *
 * Cap 1: job A downloads product P1 (slow); B (P2) and then C (P3) find the only slot taken and
 * wait for it. While they wait, P2's band is stored and registered from outside. When A frees the
 * slot, B is woken, is served from the cache (`reused`, no slot taken) and hands the slot on to C,
 * which downloads P3.
 */
import { Redis } from 'ioredis';
import { findBandFile, parseProductName, resolveBand, SCENE_DOWNLOAD_QUEUE, sceneStoragePath } from '@scenecache/core';
import { findJobById, registerBands } from '@scenecache/db';
import { until } from '@scenecache/testing';
import { SHA3_METADATA_KEY } from '@scenecache/global-cache';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const P1 = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const P2 = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';
const P3 = 'S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454';
const FALLBACK_MS = 300_000;

describe('upstream slot hand-off between waiters', () => {
  let h: PipelineHarness;
  let redis: Redis;

  beforeAll(async () => {
    h = await startPipelineHarness({ env: { UPSTREAM_CONCURRENCY: '1', WORKER_CONCURRENCY: '4', WAITER_FALLBACK_DELAY_MS: String(FALLBACK_MS) } });
    await h.startWorker();
    redis = new Redis(h.settings.redisUrl);
  });
  afterAll(async () => {
    redis.disconnect();
    await h.close();
  });

  /** Wait until job `id` is delayed in BullMQ and registered as an upstream-slot waiter. */
  /** Job `id` of `tenant` is delayed and queued for an upstream slot (the tenant's queue of SceneWaiters). */
  async function slotWaiting(id: string, tenant: string): Promise<void> {
    const key = `${h.settings.queuePrefix}:${SCENE_DOWNLOAD_QUEUE}:waiters:slot:tenant:${tenant}`;
    await until(`job ${id} to wait for a slot`, async () => (await h.queue.getJob(id))?.isDelayed() && (await redis.zscore(key, id)) !== null, 20_000);
  }

  it('a woken waiter that needs no slot passes the wake-up to the next one', async () => {
    const b04 = resolveBand(parseProductName(P1).level, 'B04');
    // A's B04 streams slowly (the rest of the sim is fast): the slot stays taken while B and C queue up.
    h.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: 100_000, product: P1, file: b04.fileSuffix, count: 1 });
    const a = await h.enqueue({ tenant_id: 'alpha', scene_id: P1, bands: ['B04'] });
    await until('A to download', () => h.sim.downloadsOf(P1, b04.fileSuffix).bytes > 0, 20_000);
    const b = await h.enqueue({ tenant_id: 'bravo', scene_id: P2, bands: ['B03'] });
    await slotWaiting(b.body.job_id!, 'bravo');
    const c = await h.enqueue({ tenant_id: 'charlie', scene_id: P3, bands: ['B02'] });
    await slotWaiting(c.body.job_id!, 'charlie');

    // Another fleet stores and registers P2's B03 meanwhile (as its worker would: verified bytes, sha3 metadata).
    const p2 = parseProductName(P2);
    const file = findBandFile(await h.sim.productFiles(P2), resolveBand(p2.level, 'B03'))!;
    const key = `${sceneStoragePath(p2)}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
    const { etag } = await h.s3.store.uploadStream({
      bucket: h.settings.globalBucket,
      key,
      body: h.sim.fileBytes(P2, file.path),
      contentLength: file.size,
      metadata: { [SHA3_METADATA_KEY]: file.sha3_256 },
    });
    await registerBands(h.db, {
      sceneId: P2,
      storageBucket: h.settings.globalBucket,
      storagePath: sceneStoragePath(p2),
      sensingDate: p2.sensingDate,
      level: p2.level,
      tile: p2.tile,
      mission: p2.mission,
      cdseProductId: null,
      bands: { B03: { key, size: file.size, sha3_256: file.sha3_256, etag, safe_path: file.path, registered_at: new Date().toISOString() } },
    });

    // Far sooner than C's fallback delay: only the hand-off B → C can get C going.
    const rows = await h.waitForJobs([a.body.job_id!, b.body.job_id!, c.body.job_id!], 60_000);
    expect(rows.map((r) => [r.tenant_id, r.status, r.cache_status])).toEqual([
      ['alpha', 'completed', 'downloaded'],
      ['bravo', 'completed', 'reused'],
      ['charlie', 'completed', 'downloaded'],
    ]);
    // B and C both waited for the slot; B finished before C, which it woke.
    expect(rows[1]!.waits).toBeGreaterThanOrEqual(1);
    expect(rows[2]!.waits).toBeGreaterThanOrEqual(1);
    expect(rows[1]!.finished_at!.getTime()).toBeLessThanOrEqual(rows[2]!.finished_at!.getTime());
    expect(Date.now() - rows[0]!.finished_at!.getTime()).toBeLessThan(FALLBACK_MS);
    // Nothing of P2 was fetched upstream; P1 and P3 once each.
    expect(h.sim.downloadsOf(P2)).toMatchObject({ started: 0 });
    expect(h.sim.downloadsOf(P1)).toMatchObject({ started: 1, completed: 1 });
    expect(h.sim.downloadsOf(P3)).toMatchObject({ started: 1, completed: 1 });
    expect(h.sim.counters().peakConcurrentDownloads).toBe(1);
    expect((await findJobById(h.db, c.body.job_id!))?.attempts).toBe(1);
  });
});
