/**
 * 30 tenants ask for the same product at once; two spawned worker processes (4 slots each, so 8
 * slots for 30 jobs) serve them with 2 upstream slots. Exactly one upstream download per band (the
 * unit of download is the band file: the jobs that fetched bands fetched disjoint sets covering
 * the product's four), one catalogue lookup and one `manifest.safe` read for the product, every
 * job completed, the upstream cap held — and the jobs that wait get out of the way (delayed)
 * instead of sitting in worker slots: more jobs start before the first band is stored than there are slots.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseProductName, resolveBand } from '@scenecache/core';
import { heldAdvisoryLocks } from '@scenecache/testing';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const PRODUCT = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const BANDS = ['B02', 'B03', 'B04', 'B08'];
const TENANTS = Array.from({ length: 30 }, (_, i) => `tenant-${String(i + 1).padStart(2, '0')}`);

interface Sample {
  active: number;
  delayed: number;
  downloading: number;
}

describe('30 tenants, one product, two worker processes', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    // Slow the upstream (~1 MB at 400 kB/s ≈ 2.5 s) so the waiting state is long enough to observe.
    h = await startPipelineHarness({ simOptions: { bytesPerSecond: 400_000 }, env: { WORKER_CONCURRENCY: '4', UPSTREAM_CONCURRENCY: '2' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('downloads each band once, completes every job, and keeps waiters out of worker slots', async () => {
    const workers = [h.spawnWorker(), h.spawnWorker()];
    const ids = (await Promise.all(TENANTS.map((tenant) => h.enqueue({ tenant_id: tenant, scene_id: PRODUCT, bands: BANDS })))).map((r) => {
      expect(r.status).toBe(202);
      return r.body.job_id!;
    });

    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const counts = await h.queue.getJobCounts('active', 'delayed');
        samples.push({ active: counts.active ?? 0, delayed: counts.delayed ?? 0, downloading: h.sim.counters().currentConcurrentDownloads });
        await sleep(20);
      }
    })();
    const rows = await h.waitForJobs(ids, 90_000);
    sampling = false;
    await sampler;

    // Every job completed. The jobs that downloaded fetched disjoint band sets that cover the
    // product (a band file is downloaded by one job) and count exactly those bytes; the rest reused.
    expect(rows.map((r) => r.status)).toEqual(ids.map(() => 'completed'));
    const downloaders = rows.filter((r) => r.cache_status === 'downloaded');
    expect(downloaders.length).toBeGreaterThanOrEqual(1);
    expect(downloaders.length).toBeLessThanOrEqual(BANDS.length);
    expect(downloaders.flatMap((r) => r.bands_downloaded).sort()).toEqual([...BANDS].sort());
    const level = parseProductName(PRODUCT).level;
    const sizes = Object.fromEntries(await Promise.all(BANDS.map(async (band) => [band, (await h.upstreamFile(PRODUCT, band)).size] as const)));
    for (const r of downloaders) expect(r.bytes_downloaded).toBe(r.bands_downloaded.reduce((sum, band) => sum + sizes[band]!, 0));
    expect(rows.filter((r) => r.cache_status === 'reused')).toHaveLength(30 - downloaders.length);
    for (const r of rows.filter((x) => x.cache_status === 'reused')) expect(r).toMatchObject({ bands_downloaded: [], bytes_downloaded: 0 });
    expect(new Set(rows.map((r) => r.worker_id)).size).toBeGreaterThanOrEqual(1);

    // Exactly one upstream download per band, one lookup and one manifest read, and the cap held.
    for (const band of BANDS) {
      const b = resolveBand(level, band);
      expect(h.sim.downloadsOf(PRODUCT, b.fileSuffix)).toMatchObject({ started: 1, completed: 1 });
    }
    const counters = h.sim.counters();
    expect(counters.totals.completed).toBe(BANDS.length);
    expect(counters.peakConcurrentDownloads).toBeLessThanOrEqual(h.settings.upstreamConcurrency);
    expect(counters.tokenLogins).toBe(1);
    expect(counters.manifestRequests).toBe(1);
    expect(counters.catalogueRequests).toBe(1);

    // Nobody sat in a worker slot waiting: no job can end before a band is stored, so had waiters
    // held their worker slots, at most those 8 slots' jobs could have started by the time the
    // first band was registered. More did: the others got out of the way (delayed).
    const workerSlots = 2 * 4;
    const cached = await h.db.selectFrom('global_scene_cache').select('bands').where('scene_id', '=', PRODUCT).executeTakeFirstOrThrow();
    const firstRegistered = Math.min(...Object.values(cached.bands).map((b) => Date.parse(b.registered_at)));
    expect(rows.filter((r) => r.started_at!.getTime() < firstRegistered).length).toBeGreaterThan(workerSlots);
    expect(samples.filter((s) => s.downloading > 0).length).toBeGreaterThan(5);
    expect(Math.max(...samples.map((s) => s.delayed))).toBeGreaterThan(workerSlots);
    const waited = rows.filter((r) => r.waits > 0);
    expect(waited.length).toBeGreaterThanOrEqual(30 - 8);

    // No advisory lock left behind once the fleet is idle.
    expect(await heldAdvisoryLocks(h.db)).toEqual([]);
    expect(workers.every((w) => w.child.exitCode === null)).toBe(true);
  });
});
