/**
 * Scenario `upstream-cap` (issue 6, scenario 6): with the fleet-wide cap at 4 (UPSTREAM_CONCURRENCY,
 * CDSE's concurrent-download limit) and 40 distinct products queued at once (quick: 12), how much
 * of the cap the fleet keeps busy — a slot left idle while work waits is quota wasted.
 *
 * Setup: 3 worker processes × WORKER_CONCURRENCY 8 (24 worker slots for 4 upstream slots, so most
 * jobs wait for a slot, delayed, and are woken when one frees); WAITER_FALLBACK_DELAY_MS at its
 * default. Each product asks for 1 or 2 bands (alternating B04 / B04+B08); the sim serves band
 * files at sizeScale 0.02 (~2.4–2.7 MB) at 2 MB/s per stream, CDSE's ~20 MB/s per download scaled
 * down with the file sizes, so each band takes ~1.3 s upstream (real bands take ~6.5 s at 20 MB/s:
 * scheduling overhead weighs ~5× more here than in production). The sim would accept 8 streams
 * (2 × the cap), so an overshoot shows as a peak above 4 instead of a 429.
 *
 * Measured, over the burst = from the first "downloading from upstream" (a slot taken) to the last
 * band registration:
 * - slots in use: the fleet's upstream-slot advisory locks (`countUpstreamSlotsInUse`, the
 *   authoritative fleet view) sampled every 20 ms; time-weighted mean = ∫ slots dt / duration.
 *   Goal ≥ 3.6 of 4; ratio = mean / 4 (the cap is the limit).
 * - the same over the saturated part: while at least 4 products were still not registered (after
 *   that fewer downloads than slots remain: the tail is inherent).
 * - band streams at the upstream: the sim's live count of streams in flight, sampled every 10 ms —
 *   bytes flowing, where locks are slots held; the gap between the two is what a slot holder does
 *   besides streaming (product lookup, manifest, HEAD, the upload's last part and completion, the
 *   registering commit) plus the hand-off from one holder to the next.
 * - peaks: locks (sampled) and the sim's exact peak; both must be ≤ 4.
 * - where slot time goes, stage by stage (`details.slotTimeByStageMs`, see {@link slotTimeBreakdown}),
 *   from the workers' log lines (LOG_LEVEL debug adds the CDSE client's manifest and verification
 *   lines), the sim's per-file stream times and the registrations.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { sql } from 'kysely';
import { parseProductName, resolveBand } from '@scenecache/core';
import { countUpstreamSlotsInUse } from '@scenecache/db';
import type { LogLine } from '@scenecache/testing';
import { REPO_ROOT, startBenchEnvironment, type DownloadRequest } from '../bench-environment.js';
import { waitForJobsDone } from '../bench-jobs.js';
import { CDSE_CONCURRENT_DOWNLOADS, STREAM_BYTES_PER_SECOND } from '../cdse-profile.js';
import { dipsBelow, epochNow, GaugeSampler, timeWeightedMean, type GaugeSample } from '../measure/gauge.js';
import { percentile } from '../measure/sample-stats.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

const CAP = CDSE_CONCURRENT_DOWNLOADS;
const PROCESSES = 3;
const WORKER_CONCURRENCY = 8;
const SIZE_SCALE = 0.02;
/** Per-stream rate of the sim (bytes/s). */
const BYTES_PER_SECOND = STREAM_BYTES_PER_SECOND;
const GOAL = 3.6;
const LOCK_SAMPLE_MS = 20;
const SIM_SAMPLE_MS = 10;

/** `n` distinct real product names (fixtures/cdse/sentinel2_products.tsv), levels as listed. */
function realProducts(n: number): string[] {
  const names = readFileSync(resolve(REPO_ROOT, 'fixtures/cdse/sentinel2_products.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')[0]!);
  if (names.length < n) throw new Error(`only ${names.length} products in the fixtures, need ${n}`);
  return names.slice(0, n);
}

/** Epoch ms of a worker log line (pino `time`: ISO string or epoch ms). */
function timeOf(line: LogLine): number {
  const t = typeof line.time === 'string' ? Date.parse(line.time) : line.time;
  if (typeof t !== 'number' || !Number.isFinite(t)) throw new Error(`log line without a time: ${JSON.stringify(line)}`);
  return t;
}

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));
const stats = (xs: readonly number[]): { n: number; p50?: number; p95?: number; max?: number; sum: number } =>
  xs.length === 0
    ? { n: 0, sum: 0 }
    : { n: xs.length, p50: round(percentile(xs, 50), 1), p95: round(percentile(xs, 95), 1), max: round(Math.max(...xs), 1), sum: round(xs.reduce((a, b) => a + b, 0), 1) };

/** Stages of a held slot's time (see {@link slotTimeBreakdown}). */
type Stage = 'toManifest' | 'manifestToStream' | 'betweenBands' | 'stream' | 'streamToVerified' | 'verifiedToStored' | 'register' | 'handOff';

/**
 * Where a held slot's time goes, per stage (ms), from the workers' logs (info and debug lines),
 * the sim's per-file stream times and the registrations:
 * - `toManifest`: slot taken → manifest read (product lookup, token, `manifest.safe` GET);
 * - `manifestToStream`: manifest read → the first band stream starts at the sim (HEAD of the
 *   global object, GET);
 * - `betweenBands`: a band stored → the job's next band stream starts (HEAD, GET);
 * - `stream`: the sim streaming a band file (size / rate);
 * - `streamToVerified`: the sim's last byte → the worker's "CDSE file verified" (socket, hash);
 * - `verifiedToStored`: verified → "band stored" (the last part or the single PutObject, which
 *   lib-storage sends only once the body has ended when the file is smaller than a part,
 *   CompleteMultipartUpload);
 * - `register`: the job's last band stored → its registration (`updated_at`);
 * - `handOff`: a registration → the next slot taken (FIFO pairing of the k-th registration with the
 *   (k + cap)-th slot taken; the sum is exact whatever the pairing): commit, lock release, waking a
 *   delayed waiter, its pick-up, cache read, scene lock and slot try-lock.
 */
function slotTimeBreakdown(
  logs: readonly LogLine[],
  fileStreams: ReadonlyMap<string, { start?: number; end?: number }>,
  registrations: ReadonlyArray<{ scene_id: string; updated_at: Date }>,
  slotTaken: readonly number[],
  registered: readonly number[],
): Record<Stage, ReturnType<typeof stats>> {
  const out: Record<Stage, number[]> = { toManifest: [], manifestToStream: [], betweenBands: [], stream: [], streamToVerified: [], verifiedToStored: [], register: [], handOff: [] };
  const regOf = new Map(registrations.map((r) => [r.scene_id, r.updated_at.getTime()]));
  const manifestAt = new Map<string, number>();
  const verifiedAt = new Map<string, number>();
  for (const l of logs) {
    if (l.msg === 'read manifest.safe' && typeof l.safeName === 'string') manifestAt.set(l.safeName.replace(/\.SAFE$/, ''), timeOf(l));
    if (l.msg === 'CDSE file verified' && typeof l.path === 'string' && typeof l.productId === 'string') verifiedAt.set(`${l.productId}/${l.path}`, timeOf(l));
  }
  const byJob = new Map<string, LogLine[]>();
  for (const l of logs) {
    if (typeof l.jobId !== 'string') continue;
    if (l.msg !== 'downloading from upstream' && l.msg !== 'band stored in the global bucket') continue;
    byJob.set(l.jobId, [...(byJob.get(l.jobId) ?? []), l]);
  }
  const push = (stage: Stage, from: number | undefined, to: number | undefined): void => {
    if (from !== undefined && to !== undefined) out[stage].push(to - from);
  };
  for (const lines of byJob.values()) {
    lines.sort((a, b) => timeOf(a) - timeOf(b));
    const sceneId = String(lines[0]!.sceneId);
    let mark: number | undefined;
    let first = true;
    for (const l of lines) {
      if (l.msg === 'downloading from upstream') {
        mark = timeOf(l);
        first = true;
        continue;
      }
      const suffix = resolveBand(parseProductName(sceneId).level, String(l.band)).fileSuffix;
      const [key, file] = [...fileStreams.entries()].find(([k]) => k.startsWith(`${sceneId}/`) && k.endsWith(suffix)) ?? [];
      const verified = key === undefined ? undefined : [...verifiedAt.entries()].find(([k]) => k.endsWith(key.slice(sceneId.length)))?.[1];
      if (first) {
        push('toManifest', mark, manifestAt.get(sceneId));
        push('manifestToStream', manifestAt.get(sceneId), file?.start);
      } else {
        push('betweenBands', mark, file?.start);
      }
      push('stream', file?.start, file?.end);
      push('streamToVerified', file?.end, verified);
      push('verifiedToStored', verified, timeOf(l));
      mark = timeOf(l);
      first = false;
    }
    push('register', mark, regOf.get(sceneId));
  }
  for (let k = 0; k + CAP < slotTaken.length && k < registered.length; k++) out.handOff.push(slotTaken[k + CAP]! - registered[k]!);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, stats(v)])) as Record<Stage, ReturnType<typeof stats>>;
}

/** The `upstream-cap` scenario. */
export const scenario: Scenario = {
  id: 'upstream-cap',
  title: 'Upstream cap: time-weighted slots in use during a burst (cap 4)',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const productCount = ctx.quick ? 12 : 40;
    const products = realProducts(productCount);
    const requests: DownloadRequest[] = products.map((scene_id, i) => ({ tenant_id: 'bench-cap', scene_id, bands: i % 2 === 0 ? ['B04'] : ['B04', 'B08'] }));
    const env = await startBenchEnvironment({
      sim: { sizeScale: SIZE_SCALE, bytesPerSecond: BYTES_PER_SECOND, maxConcurrentDownloads: 2 * CAP, logLevel: 'silent' },
      env: { UPSTREAM_CONCURRENCY: String(CAP), WORKER_CONCURRENCY: String(WORKER_CONCURRENCY) },
    });
    try {
      // The sim hashes each product's band files for its manifest on first use: do it now, outside the burst.
      const bandBytes = new Map<string, number>();
      for (const r of requests) {
        const files = await env.sim.productFiles(r.scene_id);
        const level = parseProductName(r.scene_id).level;
        for (const b of r.bands!) {
          const suffix = resolveBand(level, b).fileSuffix;
          const f = files.find((x) => x.path.endsWith(suffix));
          if (!f) throw new Error(`${r.scene_id}: no ${b} file`);
          bandBytes.set(`${r.scene_id}/${b}`, f.size);
        }
      }
      const totalBytes = [...bandBytes.values()].reduce((a, b) => a + b, 0);
      const idealMs = (totalBytes / BYTES_PER_SECOND / CAP) * 1000;
      ctx.log(`${products.length} products, ${bandBytes.size} band files, ${(totalBytes / 1e6).toFixed(1)} MB at ${BYTES_PER_SECOND / 1e6} MB/s per stream: ideal burst ${(idealMs / 1000).toFixed(1)} s at ${CAP} streams`);
      // debug adds the client's "read manifest.safe" and "CDSE file verified" lines (a few per job) for the breakdown.
      const workers = await env.spawnWorkers(PROCESSES, { LOG_LEVEL: 'debug' });
      env.sim.resetCounters();

      const locks = new GaugeSampler(() => countUpstreamSlotsInUse(env.db, CAP), LOCK_SAMPLE_MS);
      // Each band file's stream at the sim: first seen started, first seen completed (±SIM_SAMPLE_MS).
      const fileStreams = new Map<string, { start?: number; end?: number }>();
      const streams = new GaugeSampler(() => {
        const c = env.sim.counters();
        const now = epochNow();
        for (const [key, d] of Object.entries(c.files)) {
          let e = fileStreams.get(key);
          if (!e) fileStreams.set(key, (e = {}));
          if (e.start === undefined && d.started > 0) e.start = now;
          if (e.end === undefined && d.completed > 0) e.end = now;
        }
        return c.currentConcurrentDownloads;
      }, SIM_SAMPLE_MS);
      const enqueuedAt = epochNow();
      let ids: string[];
      let rows;
      try {
        ids = await env.enqueue(requests);
        ctx.log(`enqueued ${ids.length} jobs; waiting`);
        rows = await waitForJobsDone(env.db, ids, { timeoutMs: 10 * 60_000, everyMs: 50 });
      } finally {
        await Promise.all([locks.stop(), streams.stop()]);
      }
      const counters = env.sim.counters();
      const failed = rows.filter((r) => r.status !== 'completed');
      if (failed.length > 0) throw new Error(`${failed.length} jobs failed, e.g. ${failed[0]!.error_code}: ${failed[0]!.error_message}`);

      // Events: slot taken ("downloading from upstream"), band stored (time, ms), product registered.
      const logs = workers.flatMap((w) => w.logs);
      const slotTaken = logs.filter((l) => l.msg === 'downloading from upstream').map(timeOf).sort((a, b) => a - b);
      const transfers = logs.filter((l) => l.msg === 'band stored in the global bucket').map((l) => ({ end: timeOf(l), ms: Number(l.ms) }));
      const reg = await sql<{ scene_id: string; updated_at: Date }>`SELECT scene_id, updated_at FROM global_scene_cache`.execute(env.db);
      const registered = reg.rows.map((r) => r.updated_at.getTime()).sort((a, b) => a - b);
      if (registered.length !== products.length) throw new Error(`${registered.length} of ${products.length} products registered`);
      const burstStart = slotTaken[0]!;
      const burstEnd = registered[registered.length - 1]!;
      // Saturated: while ≥ CAP products were still not registered, i.e. until the (N − CAP + 1)-th registration.
      const saturatedEnd = registered[registered.length - CAP]!;
      const burstMs = burstEnd - burstStart;

      const lockMean = timeWeightedMean(locks.samples, burstStart, burstEnd);
      const lockMeanSaturated = timeWeightedMean(locks.samples, burstStart, saturatedEnd);
      const streamMean = timeWeightedMean(streams.samples, burstStart, burstEnd);
      const streamMeanSaturated = timeWeightedMean(streams.samples, burstStart, saturatedEnd);
      // Exact, from the workers' own logs: each band's transfer (HEAD + stream + upload) as an interval.
      const clip = (a: number, b: number, from: number, to: number): number => Math.max(0, Math.min(b, to) - Math.max(a, from));
      const transferMean = transfers.reduce((s, x) => s + clip(x.end - x.ms, x.end, burstStart, burstEnd), 0) / burstMs;
      const transferMeanSaturated = transfers.reduce((s, x) => s + clip(x.end - x.ms, x.end, burstStart, saturatedEnd), 0) / (saturatedEnd - burstStart);
      const lockPeak = Math.max(...locks.samples.map((s) => s.v));
      const lockDips = dipsBelow(locks.samples, CAP, burstStart, saturatedEnd);
      const streamDips = dipsBelow(streams.samples, CAP, burstStart, saturatedEnd);
      const waits = rows.map((r) => r.waits);
      const stages = slotTimeBreakdown(logs, fileStreams, reg.rows, slotTaken, registered);
      const inBurst = (xs: readonly GaugeSample[]) => xs.filter((s) => s.t >= burstStart && s.t <= burstEnd).length;

      ctx.log(
        `burst ${(burstMs / 1000).toFixed(1)} s (ideal ${(idealMs / 1000).toFixed(1)} s, first slot ${(burstStart - enqueuedAt).toFixed(0)} ms after enqueue): ` +
          `slots held ${lockMean.toFixed(2)} (saturated ${lockMeanSaturated.toFixed(2)}), streams at the sim ${streamMean.toFixed(2)} (saturated ${streamMeanSaturated.toFixed(2)}), ` +
          `worker transfers ${transferMean.toFixed(2)}; peaks: locks ${lockPeak}, sim ${counters.peakConcurrentDownloads}, 429s ${counters.rejected429}`,
      );
      ctx.log(`slot time by stage (ms): ${Object.entries(stages).map(([k, v]) => `${k} p50 ${v.p50} p95 ${v.p95} Σ ${v.sum}`).join('; ')}`);
      ctx.log(`saturated part: lock dips below ${CAP}: ${JSON.stringify(stats(lockDips))} ms; stream dips: ${JSON.stringify(stats(streamDips))} ms`);

      const figures: Figure[] = [
        {
          name: `upstream slots in use, time-weighted mean over the burst (${products.length} products, ${bandBytes.size} bands)`,
          value: round(lockMean),
          unit: 'slots',
          baseline: { name: 'the cap (UPSTREAM_CONCURRENCY)', value: CAP },
          ratio: round(lockMean / CAP),
          goal: `≥ ${GOAL}`,
          met: lockMean >= GOAL,
          note: `slot advisory locks sampled every ${LOCK_SAMPLE_MS} ms (${inBurst(locks.samples)} samples); includes the tail, when fewer than ${CAP} products remain`,
        },
        {
          name: `upstream slots in use while ≥ ${CAP} products were left (saturated part)`,
          value: round(lockMeanSaturated),
          unit: 'slots',
          baseline: { name: 'the cap (UPSTREAM_CONCURRENCY)', value: CAP },
          ratio: round(lockMeanSaturated / CAP),
          goal: `≥ ${GOAL}`,
          met: lockMeanSaturated >= GOAL,
          note: `${((saturatedEnd - burstStart) / 1000).toFixed(1)} s of the ${(burstMs / 1000).toFixed(1)} s burst`,
        },
        {
          name: 'band streams at the upstream (cdse-sim), time-weighted mean over the burst',
          value: round(streamMean),
          unit: 'streams',
          baseline: { name: 'the cap', value: CAP },
          ratio: round(streamMean / CAP),
          note: `saturated part ${streamMeanSaturated.toFixed(2)}; sampled every ${SIM_SAMPLE_MS} ms; slots held but not streaming = lookup, manifest, HEAD, upload completion, commit, hand-off`,
        },
        {
          name: 'peak upstream slots in use (locks, sampled) / concurrent downloads at the sim (exact)',
          value: Math.max(lockPeak, counters.peakConcurrentDownloads),
          unit: 'slots',
          baseline: { name: 'the cap', value: CAP },
          ratio: round(Math.max(lockPeak, counters.peakConcurrentDownloads) / CAP),
          goal: `≤ ${CAP}`,
          met: lockPeak <= CAP && counters.peakConcurrentDownloads <= CAP,
          note: `locks ${lockPeak}, sim ${counters.peakConcurrentDownloads}, 429 answers ${counters.rejected429}`,
        },
      ];
      return {
        id: scenario.id,
        title: scenario.title,
        figures,
        details: {
          settings: { cap: CAP, processes: PROCESSES, workerConcurrency: WORKER_CONCURRENCY, waiterFallbackDelayMs: env.settings.waiterFallbackDelayMs, sizeScale: SIZE_SCALE, bytesPerSecond: BYTES_PER_SECOND, simMaxConcurrentDownloads: 2 * CAP },
          products: products.length,
          bands: bandBytes.size,
          totalBytes,
          idealBurstMs: round(idealMs, 0),
          burstMs: round(burstMs, 0),
          saturatedMs: round(saturatedEnd - burstStart, 0),
          firstSlotAfterEnqueueMs: round(burstStart - enqueuedAt, 0),
          means: {
            locks: round(lockMean, 3),
            locksSaturated: round(lockMeanSaturated, 3),
            simStreams: round(streamMean, 3),
            simStreamsSaturated: round(streamMeanSaturated, 3),
            workerTransfers: round(transferMean, 3),
            workerTransfersSaturated: round(transferMeanSaturated, 3),
          },
          peaks: { locks: lockPeak, simStreams: counters.peakConcurrentDownloads, rejected429: counters.rejected429 },
          samples: { locks: inBurst(locks.samples), simStreams: inBurst(streams.samples) },
          saturatedDipsBelowCapMs: { locks: stats(lockDips), simStreams: stats(streamDips) },
          jobWaits: stats(waits),
          slotTimeByStageMs: stages,
          upstreamDownloads: counters.totals,
        },
      };
    } finally {
      await env.close();
    }
  },
};
