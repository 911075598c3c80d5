/**
 * Scenario `fairness` (issue 11): tenant A floods the fleet with N new products × 4 bands of mixed
 * resolutions (10 m, 20 m, 20 m, 60 m: a flood's files end at different times, as real ones do);
 * once the flood is in its steady state (every slot busy, the rest of it queued, some of its files
 * done), tenant B asks for one band of another product. With FIFO slots B waits for the whole
 * flood; with fair slots it gets the next slot that frees. (Slots are not pre-empted: B arriving
 * just as four equal files start would wait one file time, a ratio of about 2.)
 *
 * Same-run baseline: the same kind of job (the same band of a product of the same level, so the
 * same file size) run alone on the idle fleet first. Figures:
 * - B's job time under the flood / B's job time alone (goal ≤ 1.5);
 * - what FIFO would have given: (the flood's remaining upstream work when B was enqueued, drained
 *   at the cap, + B alone) / B alone — measured from the time the flood actually took to drain
 *   after B's enqueue (goal ≥ 5, i.e. N is large enough for the first figure to mean something).
 *
 * Upstream as CDSE: each stream at a fixed rate (`BYTES_PER_SECOND`, CDSE's 20 MB/s scaled with the
 * file sizes), 4 streams for the account; 2 worker processes × WORKER_CONCURRENCY 8.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { startBenchEnvironment, type DownloadRequest } from '../bench-environment.js';
import { bandSizes, productSet, waitForJobsDone } from '../bench-jobs.js';
import { CDSE_CONCURRENT_DOWNLOADS, REAL_TIME_SIZE_SCALE, STREAM_BYTES_PER_SECOND } from '../cdse-profile.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

const CAP = CDSE_CONCURRENT_DOWNLOADS;
const PROCESSES = 2;
const WORKER_CONCURRENCY = 8;
/** Streams as long as real files (see cdse-profile.ts); quick: × 0.02. */
const SIZE_SCALE = REAL_TIME_SIZE_SCALE;
const QUICK_SIZE_SCALE = 0.02;
const BYTES_PER_SECOND = STREAM_BYTES_PER_SECOND;
const FLOOD_BANDS = ['B02', 'B05', 'B11', 'B01'];
const B_BAND = 'B04';
const GOAL = 1.5;
const FIFO_GOAL = 5;

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

/** The `fairness` scenario. */
export const scenario: Scenario = {
  id: 'fairness',
  title: 'Fairness: one tenant floods the fleet, another asks for one band — its time vs alone',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    // FIFO would make B wait for the whole flood: N × 4 files / 4 slots ≈ N × B's file time (≥ 5 × alone for N ≥ 12 of these mixed band sets).
    const floodCount = ctx.quick ? 6 : 16;
    const sizeScale = ctx.quick ? QUICK_SIZE_SCALE : SIZE_SCALE;
    // L2A names (odd indexes of a fresh set): A's flood, B's product, and B's baseline product.
    const names = productSet(912, 2 * (floodCount + 2)).filter((_, i) => i % 2 === 1);
    const [aloneProduct, bProduct, ...flood] = names;
    const env = await startBenchEnvironment({
      sim: { sizeScale, bytesPerSecond: BYTES_PER_SECOND, maxConcurrentDownloads: 2 * CAP, logLevel: 'silent' },
      env: { UPSTREAM_CONCURRENCY: String(CAP), WORKER_CONCURRENCY: String(WORKER_CONCURRENCY) },
    });
    try {
      const [aloneSize, bSize] = [(await bandSizes(env.sim, aloneProduct!, [B_BAND])).get(B_BAND)!, (await bandSizes(env.sim, bProduct!, [B_BAND])).get(B_BAND)!];
      if (aloneSize !== bSize) throw new Error(`baseline and measured files differ in size (${aloneSize} vs ${bSize} bytes)`);
      let floodBytes = 0;
      for (const p of flood) for (const s of (await bandSizes(env.sim, p, FLOOD_BANDS)).values()) floodBytes += s;
      await env.spawnWorkers(PROCESSES);

      // Baseline: B's kind of job alone on the idle fleet.
      const [aloneId] = await env.enqueue([{ tenant_id: 'fair-b', scene_id: aloneProduct!, bands: [B_BAND] }]);
      const [alone] = await waitForJobsDone(env.db, [aloneId!], { timeoutMs: 60_000, everyMs: 10 });
      if (alone!.status !== 'completed') throw new Error(`baseline job ${alone!.status}: ${alone!.error_code}`);
      const aloneMs = alone!.finished_at!.getTime() - alone!.enqueued_at.getTime();
      ctx.log(`B alone: ${aloneMs} ms for one ${(bSize / 1e6).toFixed(2)} MB band`);

      // The flood: N products × 4 bands for tenant A.
      const floodRequests: DownloadRequest[] = flood.map((scene_id) => ({ tenant_id: 'flood-a', scene_id, bands: FLOOD_BANDS }));
      const floodIds = await env.enqueue(floodRequests);
      ctx.log(`tenant A enqueued ${floodIds.length} products × ${FLOOD_BANDS.length} bands (${(floodBytes / 1e6).toFixed(1)} MB: ${((floodBytes / (CAP * BYTES_PER_SECOND)) | 0)} s at the cap)`);
      // Steady state: the flood holds the cap, more of it queues for slots, and 5 of its files are done.
      const deadline = Date.now() + 120_000;
      for (;;) {
        const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM download_jobs WHERE tenant_id = 'flood-a' AND waiting_for = 'upstream_slot' AND status = 'queued'`.execute(env.db);
        const c = env.sim.counters();
        if (c.currentConcurrentDownloads === CAP && rows[0]!.n >= 1 && c.totals.completed >= 1 + CAP) break;
        if (Date.now() > deadline) throw new Error(`the flood did not reach its steady state within 120 s (streams ${c.currentConcurrentDownloads}, files done ${c.totals.completed}, jobs queued for a slot ${rows[0]!.n})`);
        await sleep(10);
      }
      const startedBefore = (await sql<{ n: number }>`SELECT count(*)::int AS n FROM upstream_transfers WHERE tenant_id = 'flood-a'`.execute(env.db)).rows[0]!.n;

      // B asks for one band of another product.
      const [bId] = await env.enqueue([{ tenant_id: 'fair-b', scene_id: bProduct!, bands: [B_BAND] }]);
      const [b] = await waitForJobsDone(env.db, [bId!], { timeoutMs: 5 * 60_000, everyMs: 10 });
      if (b!.status !== 'completed') throw new Error(`B's job ${b!.status}: ${b!.error_code}`);
      const bMs = b!.finished_at!.getTime() - b!.enqueued_at.getTime();
      ctx.log(`B under the flood: ${bMs} ms (${(bMs / aloneMs).toFixed(2)} × alone); waiting for the flood to drain`);

      // What FIFO would have cost B: the flood's work left at B's enqueue, drained at the cap.
      const rows = await waitForJobsDone(env.db, floodIds, { timeoutMs: 10 * 60_000, everyMs: 100, onProgress: (p) => ctx.log(`flood: ${p.completed}/${floodIds.length} completed`) });
      const failed = rows.filter((r) => r.status !== 'completed');
      if (failed.length > 0) throw new Error(`${failed.length} flood jobs failed, e.g. ${failed[0]!.error_code}`);
      const drainedMs = Math.max(...rows.map((r) => r.finished_at!.getTime())) - b!.enqueued_at.getTime();
      const fifoMs = drainedMs + aloneMs;
      const counters = env.sim.counters();
      const figures: Figure[] = [
        {
          name: `tenant B's one-band job while tenant A floods ${floodCount} products × ${FLOOD_BANDS.length} bands`,
          value: bMs,
          unit: 'ms',
          baseline: { name: 'the same job alone on the idle fleet', value: aloneMs },
          ratio: round(bMs / aloneMs),
          goal: `≤ ${GOAL}`,
          met: bMs / aloneMs <= GOAL,
          note: 'enqueue → completed, from download_jobs; fair slots: least-served tenant first',
        },
        {
          name: 'what FIFO slots would have given B: the flood drained after B\'s enqueue + B alone',
          value: fifoMs,
          unit: 'ms',
          baseline: { name: 'the same job alone on the idle fleet', value: aloneMs },
          ratio: round(fifoMs / aloneMs),
          goal: `≥ ${FIFO_GOAL}`,
          met: fifoMs / aloneMs >= FIFO_GOAL,
          note: `the flood took ${drainedMs} ms to finish after B was enqueued (${startedBefore} of its ${floodIds.length * FLOOD_BANDS.length} files had started before)`,
        },
      ];
      return {
        id: scenario.id,
        title: scenario.title,
        figures,
        details: {
          settings: { cap: CAP, processes: PROCESSES, workerConcurrency: WORKER_CONCURRENCY, sizeScale, bytesPerSecond: BYTES_PER_SECOND },
          floodProducts: floodCount,
          floodBands: FLOOD_BANDS,
          floodBytes,
          bandBytes: bSize,
          aloneMs,
          bMs,
          bWaits: b!.waits,
          drainedAfterBMs: drainedMs,
          floodFilesStartedBeforeB: startedBefore,
          peakStreams: counters.peakConcurrentDownloads,
          downloads: counters.totals,
        },
      };
    } finally {
      await env.close();
    }
  },
};
