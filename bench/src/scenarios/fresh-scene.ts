/**
 * Scenario `fresh-scene` (issue 11): one new L2A product wanted at once by 8 tenants with
 * overlapping band sets — 12 distinct band files — against an upstream that streams each file at a
 * fixed rate per connection, as CDSE does (20 MB/s each, 4 at once; here scaled: the sim's files at
 * `SIZE_SCALE` of their real size, `BYTES_PER_SECOND` per stream, so each file takes about as long
 * as the real one at 20 MB/s).
 *
 * Same-run baseline: what the account allows, distinct bytes / (cap × per-connection rate): the
 * burst can't be shorter than that. Figures:
 * - upstream use: time-weighted mean of the sim's concurrent streams from the first stream's start
 *   to the last one's end, / cap (goal ≥ 0.90);
 * - time from the enqueue to every job completed / the baseline (goal ≤ 1.2);
 * - upstream downloads / distinct files (goal 1.00) and `manifest.safe` reads (goal 1).
 *
 * Setup: 2 worker processes × WORKER_CONCURRENCY 8, UPSTREAM_CONCURRENCY 4, the sim accepting 8
 * streams (an overshoot shows as a peak above 4).
 */
import { parseProductName, resolveBand } from '@scenecache/core';
import { startBenchEnvironment, type DownloadRequest } from '../bench-environment.js';
import { bandSizes, productSet, waitForJobsDone } from '../bench-jobs.js';
import { CDSE_CONCURRENT_DOWNLOADS, REAL_TIME_SIZE_SCALE, STREAM_BYTES_PER_SECOND } from '../cdse-profile.js';
import { epochNow, GaugeSampler, timeWeightedMean } from '../measure/gauge.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

const CAP = CDSE_CONCURRENT_DOWNLOADS;
const PROCESSES = 2;
const WORKER_CONCURRENCY = 8;
const BYTES_PER_SECOND = STREAM_BYTES_PER_SECOND;
const STREAMS_GOAL = 0.9;
const TIME_GOAL = 1.2;

/** 8 tenants' band sets over the 12 distinct bands of an L2A product (10 m, 20 m, 60 m). */
export const FRESH_SCENE_REQUESTS: ReadonlyArray<readonly string[]> = Object.freeze([
  ['B02', 'B03', 'B04', 'B08'],
  ['B04', 'B08', 'B05', 'B8A'],
  ['B02', 'B03', 'B04'],
  ['B05', 'B06', 'B07', 'B8A'],
  ['B11', 'B12', 'B8A'],
  ['B01', 'B09', 'B04'],
  ['B08', 'B11', 'B12', 'B05'],
  ['B02', 'B06', 'B07', 'B09', 'B01'],
]);

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/**
 * Makespan (ms) of the largest-first schedule of files of `sizes` bytes on `slots` connections at
 * `bytesPerSecond` each, files not split (CDSE does not honour Range): each file, largest first,
 * goes to the connection that frees first. For these few files it is the best schedule there is,
 * so it bounds what any scheduler can do, beside distinct bytes / (slots × rate).
 */
export function largestFirstMakespanMs(sizes: readonly number[], slots: number, bytesPerSecond: number): number {
  const free = new Array<number>(slots).fill(0);
  for (const size of [...sizes].sort((a, b) => b - a)) {
    const i = free.indexOf(Math.min(...free));
    free[i]! += (size / bytesPerSecond) * 1000;
  }
  return Math.max(...free);
}

/** The `fresh-scene` scenario. */
export const scenario: Scenario = {
  id: 'fresh-scene',
  title: 'Fresh scene: one new product, 8 tenants, 12 band files — upstream use vs what the account allows',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    // Streams as long as real files (a 10 m band ~6 s, a 20 m band ~1.5 s; see cdse-profile.ts); quick: × 0.02.
    const sizeScale = ctx.quick ? 0.02 : REAL_TIME_SIZE_SCALE;
    const product = productSet(911, 2)[1]!; // an L2A name no other scenario uses
    if (parseProductName(product).level !== 'L2A') throw new Error(`${product} is not L2A`);
    const requests: DownloadRequest[] = FRESH_SCENE_REQUESTS.map((bands, i) => ({ tenant_id: `fresh-${i + 1}`, scene_id: product, bands: [...bands] }));
    const distinct = [...new Set(FRESH_SCENE_REQUESTS.flat())];
    const env = await startBenchEnvironment({
      sim: { sizeScale, bytesPerSecond: BYTES_PER_SECOND, maxConcurrentDownloads: 2 * CAP, logLevel: 'silent' },
      env: { UPSTREAM_CONCURRENCY: String(CAP), WORKER_CONCURRENCY: String(WORKER_CONCURRENCY) },
    });
    try {
      const sizes = await bandSizes(env.sim, product, distinct);
      const distinctBytes = [...sizes.values()].reduce((a, b) => a + b, 0);
      const allowedMs = (distinctBytes / (CAP * BYTES_PER_SECOND)) * 1000;
      const longestMs = (Math.max(...sizes.values()) / BYTES_PER_SECOND) * 1000;
      const bestMs = largestFirstMakespanMs([...sizes.values()], CAP, BYTES_PER_SECOND);
      // The best schedule's streams in use: every byte over the best makespan.
      const bestMeanStreams = (distinctBytes / BYTES_PER_SECOND) * 1000 / bestMs;
      ctx.log(`${product}: ${distinct.length} distinct band files, ${(distinctBytes / 1e6).toFixed(1)} MB; the account allows ${(allowedMs / 1000).toFixed(2)} s at ${CAP} × ${BYTES_PER_SECOND / 1e6} MB/s (longest file alone ${(longestMs / 1000).toFixed(2)} s)`);
      await env.spawnWorkers(PROCESSES);
      env.sim.resetCounters();

      // Each file's stream at the sim: first seen started / completed (±10 ms), ms after the enqueue.
      const fileStreams = new Map<string, { start?: number; end?: number }>();
      const t0 = epochNow();
      const streams = new GaugeSampler(() => {
        const c = env.sim.counters();
        for (const [key, d] of Object.entries(c.files)) {
          const e = fileStreams.get(key) ?? {};
          fileStreams.set(key, e);
          if (e.start === undefined && d.started > 0) e.start = round(epochNow() - t0, 0);
          if (e.end === undefined && d.completed > 0) e.end = round(epochNow() - t0, 0);
        }
        return c.currentConcurrentDownloads;
      }, 10);
      let rows;
      try {
        const ids = await env.enqueue(requests);
        ctx.log(`enqueued ${ids.length} jobs; waiting`);
        rows = await waitForJobsDone(env.db, ids, { timeoutMs: 5 * 60_000, everyMs: 20 });
      } finally {
        await streams.stop();
      }
      const doneMs = Math.max(...rows.map((r) => r.finished_at!.getTime())) - t0;
      const failed = rows.filter((r) => r.status !== 'completed');
      if (failed.length > 0) throw new Error(`${failed.length} jobs failed, e.g. ${failed[0]!.error_code}: ${failed[0]!.error_message}`);

      const counters = env.sim.counters();
      const active = streams.samples.filter((s) => s.v > 0);
      const from = active[0]?.t ?? t0;
      const to = active.at(-1)?.t ?? t0;
      const meanStreams = timeWeightedMean(streams.samples, from, to);
      const level = parseProductName(product).level;
      const perFile = distinct.map((b) => env.sim.downloadsOf(product, resolveBand(level, b).fileSuffix).completed);
      ctx.log(
        `all ${rows.length} jobs done in ${(doneMs / 1000).toFixed(2)} s (${(doneMs / allowedMs).toFixed(2)} × what the account allows); ` +
          `streams ${meanStreams.toFixed(2)} of ${CAP} over ${((to - from) / 1000).toFixed(2)} s; peak ${counters.peakConcurrentDownloads}; ` +
          `${counters.totals.completed} file downloads for ${distinct.length} files; ${counters.manifestRequests} manifest read(s)`,
      );
      const figures: Figure[] = [
        {
          name: `upstream streams in use, time-weighted mean from the first stream to the last (${distinct.length} files, 8 tenants)`,
          value: round(meanStreams),
          unit: 'streams',
          baseline: { name: 'the cap (CDSE: 4 per account)', value: CAP },
          ratio: round(meanStreams / CAP),
          goal: `≥ ${STREAMS_GOAL.toFixed(2)}`,
          met: meanStreams / CAP >= STREAMS_GOAL,
          note: `ratio = mean / cap; the sim's live stream count sampled every 10 ms; peak ${counters.peakConcurrentDownloads}; files are not split (no Range at CDSE), so even the best schedule of these 12 files (largest first: ${(bestMs / 1000).toFixed(2)} s) keeps ${bestMeanStreams.toFixed(2)} streams on average (${(bestMeanStreams / CAP).toFixed(2)} of the cap)`,
        },
        {
          name: 'first stream → last stream end, vs the best schedule of these files on 4 connections',
          value: round(to - from, 0),
          unit: 'ms',
          baseline: { name: 'largest-first makespan (files not split)', value: round(bestMs, 0) },
          ratio: round((to - from) / bestMs),
          note: 'the streams\' own span: what the scheduling (slots, fairness, hand-offs) adds to the upstream time the files need',
        },
        {
          name: 'time to all jobs completed (from the enqueue)',
          value: round(doneMs, 0),
          unit: 'ms',
          baseline: { name: 'distinct bytes / (cap × per-connection rate)', value: round(allowedMs, 0) },
          ratio: round(doneMs / allowedMs),
          goal: `≤ ${TIME_GOAL}`,
          met: doneMs / allowedMs <= TIME_GOAL,
          note: `${(distinctBytes / 1e6).toFixed(1)} MB at ${CAP} × ${BYTES_PER_SECOND / 1e6} MB/s; includes the product's lookup and manifest, the fan-out copies and recording`,
        },
        {
          name: 'upstream file downloads / distinct band files',
          value: counters.totals.completed,
          unit: 'files',
          baseline: { name: 'distinct (product, band) files', value: distinct.length },
          ratio: round(counters.totals.completed / distinct.length),
          goal: '1.00',
          met: counters.totals.completed === distinct.length && perFile.every((n) => n === 1),
          note: `manifest.safe reads ${counters.manifestRequests} (goal 1), catalogue lookups ${counters.catalogueRequests}`,
        },
      ];
      return {
        id: scenario.id,
        title: scenario.title,
        figures,
        details: {
          settings: { cap: CAP, processes: PROCESSES, workerConcurrency: WORKER_CONCURRENCY, sizeScale, bytesPerSecond: BYTES_PER_SECOND },
          product,
          requests: FRESH_SCENE_REQUESTS,
          fileBytes: Object.fromEntries(sizes),
          distinctBytes,
          allowedMs: round(allowedMs, 0),
          longestFileMs: round(longestMs, 0),
          largestFirstMakespanMs: round(bestMs, 0),
          largestFirstMeanStreams: round(bestMeanStreams, 3),
          doneMs: round(doneMs, 0),
          streamWindowMs: round(to - from, 0),
          meanStreams: round(meanStreams, 3),
          peakStreams: counters.peakConcurrentDownloads,
          manifestReads: counters.manifestRequests,
          catalogueRequests: counters.catalogueRequests,
          downloads: counters.totals,
          fileStreamsMs: Object.fromEntries([...fileStreams].map(([k, v]) => [k.slice(k.lastIndexOf('/') + 1), v])),
          jobs: rows.map((r) => ({ tenant: r.tenant_id, cache_status: r.cache_status, bands_downloaded: r.bands_downloaded, waits: r.waits, ms: r.finished_at!.getTime() - t0 })),
        },
      };
    } finally {
      await env.close();
    }
  },
};
