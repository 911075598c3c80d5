/**
 * Scenario `dedup` (issue 6, scenario 1): bursts of N tenants × M products with mixed bands, all
 * enqueued at once through `POST /v1/downloads/batch` and run by 3 worker processes × 8 slots.
 * Figure per burst: upstream band files downloaded to completion (cdse-sim's counters) / distinct
 * (product, band) pairs requested — the limit is 1.00 (each pair fetched once).
 *
 * Baseline: the naive per-tenant downloader, where each tenant fetches the bands it asked for
 * itself. Its figure is computed from the requests: Σ over jobs of requested bands / distinct
 * pairs. That is ≤ N, and exactly N only if every tenant asked for the same bands of every
 * product. Ratio = ours / naive = the fraction of the naive upstream traffic we cause.
 *
 * Bands: each (tenant, product) asks for a random subset of 1–4 bands drawn from 8 popular bands
 * of the product's level (seeded PRNG, the same requests on every run). Files are small
 * (sizeScale 0.005, quick 0.002): deduplication does not depend on size. Each burst gets a fresh
 * product set (nothing cached from an earlier burst) and the sim's counters are reset before it.
 */
import { performance } from 'node:perf_hooks';
import { parseProductName, resolveBand, type ProductLevel } from '@scenecache/core';
import { seededRandom } from '@scenecache/cdse-sim';
import { startBenchEnvironment, type DownloadRequest } from '../bench-environment.js';
import { bandSizes, productSet, waitForJobsDone } from '../bench-jobs.js';
import type { Figure, Scenario } from '../scenario.js';

/** Popular bands per level, all at their native resolution (every one exists at its level). */
const BAND_POOL: Readonly<Record<ProductLevel, readonly string[]>> = {
  L1C: ['B02', 'B03', 'B04', 'B08', 'B8A', 'B11', 'B12', 'TCI'],
  L2A: ['B02', 'B03', 'B04', 'B08', 'B8A', 'B11', 'B12', 'SCL'],
};

const WORKER_PROCESSES = 3;
const WORKER_CONCURRENCY = 8;

/** One burst's requests: every tenant asks for every product, shuffled. */
function burstRequests(burst: number, tenants: number, products: readonly string[]): DownloadRequest[] {
  const random = seededRandom(6_000 + burst);
  const requests: DownloadRequest[] = [];
  for (let t = 0; t < tenants; t++) {
    for (const scene of products) {
      const pool = [...BAND_POOL[parseProductName(scene).level]];
      const count = 1 + Math.floor(random() * 4);
      const bands: string[] = [];
      for (let i = 0; i < count; i++) bands.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!);
      requests.push({ tenant_id: `dedup${burst}-tenant-${t}`, scene_id: scene, bands });
    }
  }
  for (let i = requests.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [requests[i], requests[j]] = [requests[j]!, requests[i]!];
  }
  return requests;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

/** The `dedup` scenario. */
export const scenario: Scenario = {
  id: 'dedup',
  title: 'Deduplication: upstream downloads per distinct (product, band) pair',
  async run(ctx) {
    const bursts = ctx.quick ? [{ n: 3, m: 2 }, { n: 5, m: 2 }] : [{ n: 10, m: 5 }, { n: 10, m: 20 }, { n: 50, m: 5 }, { n: 50, m: 20 }];
    const sizeScale = ctx.quick ? 0.002 : 0.005;
    const env = await startBenchEnvironment({ sim: { sizeScale }, env: { WORKER_CONCURRENCY: String(WORKER_CONCURRENCY) } });
    const figures: Figure[] = [];
    const details: Record<string, unknown>[] = [];
    try {
      await env.spawnWorkers(WORKER_PROCESSES);
      ctx.log(`${WORKER_PROCESSES} worker processes × ${WORKER_CONCURRENCY} slots, sizeScale ${sizeScale}`);
      for (const [b, { n, m }] of bursts.entries()) {
        const products = productSet(100 + b, m);
        const requests = burstRequests(b, n, products);
        const pairs = new Set<string>();
        let naiveFiles = 0;
        let naiveBytes = 0;
        const sizes = new Map<string, Map<string, number>>();
        for (const scene of products) sizes.set(scene, await bandSizes(env.sim, scene, BAND_POOL[parseProductName(scene).level]));
        for (const r of requests) {
          for (const band of r.bands!) {
            pairs.add(`${r.scene_id}|${band}`);
            naiveFiles++;
            naiveBytes += sizes.get(r.scene_id)!.get(band)!;
          }
        }
        env.sim.resetCounters();
        ctx.log(`burst N=${n} × M=${m}: ${requests.length} jobs, ${pairs.size} distinct (product, band) pairs, enqueueing`);
        const t0 = performance.now();
        const ids = await env.enqueue(requests);
        const rows = await waitForJobsDone(env.db, ids, {
          timeoutMs: ctx.quick ? 180_000 : 600_000,
          onProgress: (p) => ctx.log(`  N=${n} × M=${m}: ${p.completed} completed, ${p.active} active, ${p.queued} queued, ${p.failed} failed`),
        });
        const wallMs = performance.now() - t0;
        const counters = env.sim.counters();
        let upstreamFiles = 0;
        let upstreamStarted = 0;
        let upstreamBytes = 0;
        let maxPerFile = 0;
        for (const scene of products) {
          const c = counters.products[scene];
          upstreamFiles += c?.completed ?? 0;
          upstreamStarted += c?.started ?? 0;
          upstreamBytes += c?.bytes ?? 0;
        }
        for (const c of Object.values(counters.files)) maxPerFile = Math.max(maxPerFile, c.completed);
        // Every pair requested must be among the files fetched (a canonical band id maps to one file).
        const fetched = new Set(Object.keys(counters.files).filter((k) => counters.files[k]!.completed > 0));
        const pairsFetched = [...pairs].filter((p) => {
          const [scene, band] = p.split('|') as [string, string];
          const suffix = resolveBand(parseProductName(scene).level, band).fileSuffix;
          return [...fetched].some((k) => k.startsWith(`${scene}/`) && k.endsWith(suffix));
        }).length;
        const completed = rows.filter((r) => r.status === 'completed').length;
        const reused = rows.filter((r) => r.cache_status === 'reused').length;
        const downloaded = rows.filter((r) => r.cache_status === 'downloaded').length;
        const ours = upstreamFiles / pairs.size;
        const naive = naiveFiles / pairs.size;
        const allDone = completed === requests.length && pairsFetched === pairs.size;
        ctx.log(
          `  done in ${(wallMs / 1000).toFixed(1)} s: ${upstreamFiles} upstream files for ${pairs.size} pairs (naive ${naiveFiles}), ` +
            `${mb(upstreamBytes)} MB vs naive ${mb(naiveBytes)} MB, ${completed}/${requests.length} completed, reused ${reused} / downloaded ${downloaded}`,
        );
        figures.push({
          name: `upstream files / distinct (product, band) pairs, N=${n} × M=${m}`,
          value: ours,
          unit: 'ratio',
          baseline: { name: 'naive per-tenant downloader', value: naive },
          ratio: ours / naive,
          goal: '1.00 (limit)',
          met: ours <= 1 && allDone,
          note:
            `${upstreamFiles} files downloaded for ${pairs.size} pairs; naive = Σ requested bands / pairs = ${naiveFiles}/${pairs.size} ` +
            `(each tenant fetches its own bands: N=${n} only if all asked the same); upstream ${mb(upstreamBytes)} MB vs naive ${mb(naiveBytes)} MB; ` +
            `${completed}/${requests.length} jobs completed (cache_status downloaded ${downloaded}, reused ${reused}); ` +
            `${WORKER_PROCESSES} workers × ${WORKER_CONCURRENCY}, sizeScale ${sizeScale}`,
        });
        details.push({
          tenants: n,
          products: m,
          jobs: requests.length,
          distinct_pairs: pairs.size,
          pairs_fetched: pairsFetched,
          upstream_files_completed: upstreamFiles,
          upstream_files_started: upstreamStarted,
          upstream_bytes: upstreamBytes,
          max_completed_downloads_of_one_file: maxPerFile,
          naive_files: naiveFiles,
          naive_bytes: naiveBytes,
          jobs_completed: completed,
          jobs_failed: rows.filter((r) => r.status === 'failed').length,
          cache_status: { downloaded, reused },
          job_waits: rows.reduce((s, r) => s + r.waits, 0),
          rejected_429: counters.rejected429,
          peak_concurrent_downloads: counters.peakConcurrentDownloads,
          wall_ms: Math.round(wallMs),
        });
      }
    } finally {
      await env.close();
    }
    return {
      id: 'dedup',
      title: 'Deduplication: upstream downloads per distinct (product, band) pair',
      figures,
      details: { worker_processes: WORKER_PROCESSES, worker_concurrency: WORKER_CONCURRENCY, size_scale: sizeScale, band_pool: BAND_POOL, bursts: details },
    };
  },
};
