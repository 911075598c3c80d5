/**
 * Scenario `wakeup` (issue 6, item 5): how soon the jobs waiting for another job's download
 * resume once that download is registered, against a waiter that polls.
 *
 * Each round, on a fresh L2A product (bands B02 B03 B04 B08), with 2 worker processes:
 * 1. one job starts downloading it; its first band is slowed by a sim fault (`slowBytesPerSecond`)
 *    so the download holds that band's lock for about {@link HOLD_MS} ms (its other bands stream
 *    beside it and are registered long before);
 * 2. once it logged "downloading from upstream" (locks held, slots taken), W jobs of other tenants
 *    ask for the same bands: they find the band locked and get out of the way (BullMQ `delayed`,
 *    registered as the band's waiters, `download_jobs.waits` + 1);
 * 3. the band is registered (`global_scene_cache`), its lock released, the waiters promoted.
 *
 * Times, all on the machine's one clock (workers, Redis, Postgres and this process share it):
 * - registration: `global_scene_cache.updated_at` of the (fresh) product — `now()` of the
 *   transaction that registered its last band (bands are registered one by one as they are
 *   stored; the slowed band is the last), i.e. its start, a few ms before its commit (so the
 *   figures err on the slow side);
 * - each waiter's BullMQ events (measure/job-events.ts, times from the Redis stream ids): `delayed`
 *   (it got out of the way), `waiting` after `delayed` (promoted), `active` (a worker took it
 *   again), `completed`.
 * Figures: registration → waiter completed (the measure: it includes the waiter's own
 * fan-out, its 4 CopyObject calls, with W waiters copying at once) and registration → waiter
 * active again (the wake-up alone). Only waiters that were delayed before the registration count
 * (the others never waited); how many were, and how many were woken by a promotion rather than by
 * the fallback delay, is reported.
 *
 * Baseline: a waiter that polls every `WAITER_FALLBACK_DELAY_MS` (the fallback delay, 5000 ms by
 * default) resumes after a uniform phase: on average after half the interval, at p95 after 0.95 of
 * it — before its own run, which the baseline leaves out (in the poller's favour).
 *
 * The completion figure is mostly the fan-out that follows a registration (W waiters and the
 * downloader each copy 4 bands into a new tenant bucket, all at once), so a last figure compares a
 * round's "registration → last waiter completed" with the same S3 calls made bare and at once from
 * this process right after the round (measure/reuse-s3-calls.ts).
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { parseProductName } from '@scenecache/core';
import { findScene } from '@scenecache/db';
import { ObjectStore } from '@scenecache/storage';
import { sql } from 'kysely';
import type { LogLine, SpawnedWorker } from '@scenecache/testing';
import { startBenchEnvironment, type BenchEnvironment } from '../bench-environment.js';
import { bandSizes, productSet } from '../bench-jobs.js';
import { JobEventLog, type JobEvent } from '../measure/job-events.js';
import { timeBareCopies, timePipelineS3Calls, type CachedObject } from '../measure/reuse-s3-calls.js';
import { roundStats, roundTo, summarize } from '../measure/sample-stats.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

/** The requested bands (every job of a round asks for the same). */
const BANDS = ['B02', 'B03', 'B04', 'B08'];

/** Rounds × waiters per round: full / quick. */
const SIZE = { full: { rounds: 20, waiters: 8 }, quick: { rounds: 2, waiters: 3 } } as const;

/** Worker processes (waiters are spread over both: a wake-up crosses processes). */
const WORKER_PROCESSES = 2;

/** How long the slowed first band keeps its band lock held (ms): ample time for W waiters to get out of the way. */
const HOLD_MS = 1_500;

/** cdse-sim's size factor (10 m bands of ~1.2–1.35 MB). */
const SIZE_SCALE = 0.01;

/** Longest wait for one round's jobs (ms): far above a round, so only a stuck job trips it. */
const ROUND_TIMEOUT_MS = 60_000;

/** The goal of the issue and DESIGN.md ("a waiter wakes within 100 ms"), ms. */
const GOAL_MS = 100;

/** One waiter of one round; times in ms since the epoch, latencies in ms. */
interface WaiterSample {
  round: number;
  jobId: string;
  /** It got out of the way (a `delayed` event) before the download was registered. */
  delayedBeforeRegistration: boolean;
  /** Its `download_jobs.waits`. */
  waits: number;
  /** It resumed by a promotion (not by the fallback delay running out). */
  promoted: boolean;
  /** registration → `waiting` after `delayed` (promoted). */
  promoteMs?: number | undefined;
  /** registration → `active` again (a worker took it). */
  resumeMs?: number | undefined;
  /** registration → `completed`. */
  completeMs: number;
  /** `active` again → `completed`: its own run (cache check, fan-out, record). */
  ownRunMs?: number | undefined;
  /** It ran in the worker process that ran the download (`download_jobs.worker_id`). */
  withDownloader: boolean;
}

/**
 * The S3 work that follows a registration — the fan-outs of the W waiters and of the downloader
 * itself (W + 1 new tenants) — done bare and all at once from this process (ms).
 */
interface FanOutBaseline {
  /** (W + 1) × 4 bare CopyObject calls at once, into buckets created beforehand. */
  bareCopiesMs: number;
  /**
   * (W + 1) × the pipeline's S3 calls for a new tenant (measure/reuse-s3-calls.ts) at once, until
   * the last is done. The downloader's own fan-out makes no cache HEADs, so this is 4 calls more
   * than the round made, out of 14 (W + 1).
   */
  pipelineS3CallsMs: number;
}

/** The first event that follows `after` in stream order and that `match` accepts. */
function firstAfter(events: readonly JobEvent[], after: JobEvent, match: (e: JobEvent) => boolean): JobEvent | undefined {
  return events.slice(events.indexOf(after) + 1).find(match);
}

/** The first log line of any of `workers` that `match` accepts. @throws after `timeoutMs`. */
function anyWorkerLog(workers: readonly SpawnedWorker[], match: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
  return Promise.any(workers.map((w) => w.waitForLog(match, timeoutMs)));
}

/** Run one round (see the module comment); the waiters' samples. */
async function runRound(env: BenchEnvironment, events: JobEventLog, workers: readonly SpawnedWorker[], round: number, productName: string, waiters: number, fallbackMs: number): Promise<{ samples: WaiterSample[]; registeredAt: number; holdMs: number; fanOut: FanOutBaseline }> {
  const sceneId = parseProductName(productName).sceneId;
  // Slow the first band only: the lock is held from the start, and the rest of the download is quick.
  const sizes = await bandSizes(env.sim, productName, BANDS);
  const firstBandBytes = sizes.get(BANDS[0]!)!;
  env.sim.addFault({ kind: 'slowBytesPerSecond', bytesPerSecond: Math.max(1, Math.round(firstBandBytes / (HOLD_MS / 1000))), product: sceneId, file: `_${BANDS[0]}`, count: 1 });

  const [downloaderId] = await env.enqueue([{ tenant_id: `dl-${round}`, scene_id: productName, bands: BANDS }]);
  const started = await anyWorkerLog(workers, (l) => l.msg === 'downloading from upstream' && l.jobId === downloaderId, ROUND_TIMEOUT_MS);
  const waiterIds = await env.enqueue(Array.from({ length: waiters }, (_, i) => ({ tenant_id: `w${round}-${i}`, scene_id: productName, bands: BANDS })));
  const finished = await events.waitForFinished([downloaderId!, ...waiterIds], ROUND_TIMEOUT_MS);
  const failed = finished.filter((e) => e.event !== 'completed');
  if (failed.length > 0) throw new Error(`round ${round}: ${failed.length} job(s) failed: ${failed[0]!.failedReason}`);

  // Each band is registered as it is stored: updated_at is now() of the last band's registration,
  // the slowed one the waiters wait for (cache hits do not change it).
  const registration = await sql<{ ms: number }>`SELECT (extract(epoch FROM updated_at) * 1000)::float8 AS ms FROM global_scene_cache WHERE scene_id = ${sceneId}`.execute(env.db);
  const registeredAt = registration.rows[0]?.ms;
  if (registeredAt === undefined) throw new Error(`round ${round}: ${sceneId} is not registered`);
  const rows = await env.db
    .selectFrom('download_jobs')
    .select(['id', 'waits', 'cache_status', 'worker_id'])
    .where('id', 'in', [downloaderId!, ...waiterIds])
    .execute();
  const rowOf = new Map(rows.map((r) => [r.id, r]));
  const notReused = rows.filter((r) => r.id !== downloaderId && r.cache_status !== 'reused');
  if (notReused.length > 0) throw new Error(`round ${round}: ${notReused.length} waiter(s) did not reuse the download (${notReused[0]!.cache_status})`);

  const samples = waiterIds.map((jobId): WaiterSample => {
    const timeline = events.events(jobId);
    // Its last wait: a waiter may be woken by the registration of another band first and wait again.
    const delayed = timeline.findLast((e) => e.event === 'delayed');
    const completed = timeline.find((e) => e.event === 'completed')!;
    const woken = delayed ? firstAfter(timeline, delayed, (e) => e.event === 'waiting' && e.prev === 'delayed') : undefined;
    const resumed = woken ? firstAfter(timeline, woken, (e) => e.event === 'active') : undefined;
    // The fallback path: the delay ran out (BullMQ promotes it at delayUntil) rather than a waker promoting it.
    const promoted = woken !== undefined && delayed?.delayUntil !== undefined && woken.at < delayed.delayUntil - fallbackMs / 10;
    return {
      round,
      jobId,
      delayedBeforeRegistration: delayed !== undefined && delayed.at <= registeredAt,
      waits: rowOf.get(jobId)?.waits ?? 0,
      promoted,
      promoteMs: woken && woken.at - registeredAt,
      resumeMs: resumed && resumed.at - registeredAt,
      completeMs: completed.at - registeredAt,
      ownRunMs: resumed && completed.at - resumed.at,
      withDownloader: rowOf.get(jobId)?.worker_id === rowOf.get(downloaderId!)?.worker_id,
    };
  });
  const startedAt = Date.parse(String(started.time));
  const fanOut = await timeFanOut(env, round, sceneId, waiters + 1);
  return { samples, registeredAt, holdMs: registeredAt - startedAt, fanOut };
}

/**
 * The S3 work of `tenants` reused jobs for new tenants, bare and all at once from this process, on
 * the product the round registered ({@link FanOutBaseline}).
 */
async function timeFanOut(env: BenchEnvironment, round: number, sceneId: string, tenants: number): Promise<FanOutBaseline> {
  const row = await findScene(env.db, sceneId);
  const objects: CachedObject[] = BANDS.map((id) => row!.bands[id]!).map((b) => ({ key: b.key, size: b.size }));
  const { settings, s3 } = env;
  const bucketOf = (kind: string, i: number): string => `${settings.tenantBucketPrefix}${kind}${round}-${i}`;
  const indexes = Array.from({ length: tenants }, (_, i) => i);
  await Promise.all(indexes.map((i) => s3.client.send(new CreateBucketCommand({ Bucket: bucketOf('bare', i) }))));
  const t0 = performance.now();
  await Promise.all(indexes.map((i) => timeBareCopies(s3.client, settings.globalBucket, bucketOf('bare', i), objects)));
  const bareCopiesMs = performance.now() - t0;
  const store = new ObjectStore(s3.client);
  const t1 = performance.now();
  await Promise.all(indexes.map((i) => timePipelineS3Calls(store, settings.globalBucket, bucketOf('seq', i), objects)));
  return { bareCopiesMs, pipelineS3CallsMs: performance.now() - t1 };
}

/** The scenario's measurements (see the module comment). */
async function measure(ctx: BenchContext, env: BenchEnvironment, events: JobEventLog): Promise<ScenarioResult> {
  const { rounds, waiters } = ctx.quick ? SIZE.quick : SIZE.full;
  const fallbackMs = env.settings.waiterFallbackDelayMs;
  // Fresh L2A products (productSet alternates L1C, L2A).
  const products = productSet(5, rounds * 2).filter((_, i) => i % 2 === 1);
  const loadAtStart = loadavg()[0]!;
  const workers = await env.spawnWorkers(WORKER_PROCESSES);
  ctx.log(`wakeup: ${rounds} rounds × ${waiters} waiters, ${WORKER_PROCESSES} worker processes, download held ~${HOLD_MS} ms, fallback delay ${fallbackMs} ms`);

  const all: WaiterSample[] = [];
  const holds: number[] = [];
  const fanOuts: FanOutBaseline[] = [];
  for (let round = 0; round < rounds; round++) {
    const r = await runRound(env, events, workers, round, products[round]!, waiters, fallbackMs);
    all.push(...r.samples);
    holds.push(r.holdMs);
    fanOuts.push(r.fanOut);
    const last = r.samples.map((s) => s.completeMs);
    ctx.log(`wakeup: round ${round + 1}/${rounds}: download held ${Math.round(r.holdMs)} ms; waiters completed ${Math.round(Math.min(...last))}–${Math.round(Math.max(...last))} ms after registration; the same S3 calls bare, at once: ${Math.round(r.fanOut.pipelineS3CallsMs)} ms (copies alone ${Math.round(r.fanOut.bareCopiesMs)} ms)`);
  }

  // Only jobs that really waited count: delayed before the registration, with a recorded wait.
  const waited = all.filter((s) => s.delayedBeforeRegistration && s.waits >= 1);
  const promoted = waited.filter((s) => s.promoted);
  if (waited.length === 0) throw new Error('no waiter was delayed before the registration: the download was too quick to measure a wake-up');
  const complete = summarize(waited.map((s) => s.completeMs));
  const resumedSamples = waited.filter((s) => s.resumeMs !== undefined);
  const resume = summarize(resumedSamples.map((s) => s.resumeMs!));
  const promote = summarize(waited.filter((s) => s.promoteMs !== undefined).map((s) => s.promoteMs!));
  const ownRun = summarize(resumedSamples.map((s) => s.ownRunMs!));
  const byProcess = (withDownloader: boolean) => {
    const ms = resumedSamples.filter((s) => s.withDownloader === withDownloader).map((s) => s.resumeMs!);
    return ms.length > 0 ? roundStats(summarize(ms)) : null;
  };
  const bareCopies = summarize(fanOuts.map((f) => f.bareCopiesMs));
  const bareS3Calls = summarize(fanOuts.map((f) => f.pipelineS3CallsMs));
  // The last waiter of a round completes when the round's whole fan-out is done.
  const lastOfRound = summarize(Array.from({ length: rounds }, (_, r) => Math.max(...waited.filter((s) => s.round === r).map((s) => s.completeMs))).filter(Number.isFinite));
  const pollingMean = fallbackMs / 2;
  const pollingP95 = 0.95 * fallbackMs;
  const verified = `${waited.length}/${all.length} waiters were delayed before the registration (waits ≥ 1), ${promoted.length} of them woken by a promotion, ${waited.length - promoted.length} by the fallback delay`;
  ctx.log(`wakeup: ${verified}`);
  ctx.log(`wakeup: registration → completed p50 ${roundTo(complete.p50)} / p95 ${roundTo(complete.p95)} ms; → active again p50 ${roundTo(resume.p50)} / p95 ${roundTo(resume.p95)} ms`);

  const polling = (p: 'p50' | 'p95') =>
    p === 'p50'
      ? { name: `polling every ${fallbackMs} ms: mean delay (interval / 2)`, value: pollingMean }
      : { name: `polling every ${fallbackMs} ms: p95 delay (0.95 × interval)`, value: pollingP95 };
  const figure = (name: string, p: 'p50' | 'p95', value: number, note: string): Figure => ({
    name,
    value: roundTo(value),
    unit: 'ms',
    baseline: polling(p),
    ratio: roundTo(value / polling(p).value, 3),
    goal: `< ${GOAL_MS} ms`,
    met: value < GOAL_MS,
    note,
  });
  const jobs = `${rounds} rounds × ${waiters} waiters on ${WORKER_PROCESSES} worker processes`;
  const figures: Figure[] = [
    figure('waiter wake-up p50: registration → waiter completed', 'p50', complete.p50, `${verified}; ${jobs}; includes each waiter's own run (cache check, 4 CopyObject, record), p50 ${roundTo(ownRun.p50)} ms`),
    figure('waiter wake-up p95: registration → waiter completed', 'p95', complete.p95, `max ${roundTo(complete.max)} ms; own run p95 ${roundTo(ownRun.p95)} ms`),
    figure('waiter wake-up p50: registration → waiter active again', 'p50', resume.p50, `the wake-up alone: registration → promoted p50 ${roundTo(promote.p50)} ms, → a worker took it p50 ${roundTo(resume.p50)} ms`),
    figure('waiter wake-up p95: registration → waiter active again', 'p95', resume.p95, `registration → promoted p95 ${roundTo(promote.p95)} ms; max ${roundTo(resume.max)} ms`),
    {
      name: 'fan-out after a registration: → last waiter completed, p50 of rounds',
      value: roundTo(lastOfRound.p50),
      unit: 'ms',
      baseline: { name: `the same S3 calls (${waiters + 1} new tenants), bare and at once, p50`, value: roundTo(bareS3Calls.p50) },
      ratio: roundTo(lastOfRound.p50 / bareS3Calls.p50, 2),
      note:
        `what the fan-out of ${waiters} waiters + the downloader costs over its S3 calls alone (14 per tenant: 4 HEAD, HeadBucket, CreateBucket, 4 × (HEAD + CopyObject)); ` +
        `their ${(waiters + 1) * BANDS.length} CopyObject alone, bare: p50 ${roundTo(bareCopies.p50)} ms`,
    },
  ];
  return {
    id: scenario.id,
    title: scenario.title,
    figures,
    details: {
      load_average_1m: { start: roundTo(loadAtStart, 2), end: roundTo(loadavg()[0]!, 2) },
      rounds,
      waiters_per_round: waiters,
      worker_processes: WORKER_PROCESSES,
      bands: BANDS,
      sim_size_scale: SIZE_SCALE,
      hold_target_ms: HOLD_MS,
      download_hold_ms: roundStats(summarize(holds)),
      waiter_fallback_delay_ms: fallbackMs,
      waiters_total: all.length,
      waiters_delayed_before_registration: waited.length,
      waiters_woken_by_promotion: promoted.length,
      registration_to_promoted_ms: roundStats(promote),
      registration_to_active_ms: roundStats(resume),
      registration_to_active_by_process_ms: {
        downloader_process: byProcess(true),
        other_process: byProcess(false),
      },
      registration_to_completed_ms: roundStats(complete),
      own_run_ms: roundStats(ownRun),
      last_waiter_of_round_completed_ms: roundStats(lastOfRound),
      fan_out_bare_copies_ms: roundStats(bareCopies),
      fan_out_bare_pipeline_s3_calls_ms: roundStats(bareS3Calls),
      fan_out_note:
        `per round, after its jobs: the S3 work of ${waiters + 1} reused jobs for new tenants (the waiters and the downloader's own fan-out), bare and at once from this process: ` +
        `${(waiters + 1) * BANDS.length} CopyObject (buckets made beforehand), then ${waiters + 1} × the pipeline's S3 calls (4 HEAD; HeadBucket + CreateBucket; 4 × (HEAD + CopyObject))`,
      clock_note:
        'registration = global_scene_cache.updated_at of the fresh product (now() of the transaction registering its last band: its start, before the commit); ' +
        'waiter times = the Redis stream ids of its BullMQ events; one machine, one clock.',
      samples: all.map((s) => ({
        round: s.round,
        delayed_before_registration: s.delayedBeforeRegistration,
        promoted: s.promoted,
        promote_ms: s.promoteMs === undefined ? null : roundTo(s.promoteMs, 2),
        active_ms: s.resumeMs === undefined ? null : roundTo(s.resumeMs, 2),
        completed_ms: roundTo(s.completeMs, 2),
        with_downloader: s.withDownloader,
      })),
    },
  };
}

/** The `wakeup` scenario. */
export const scenario: Scenario = {
  id: 'wakeup',
  title: 'Waiter wake-up: registration → completion of the waiting jobs',
  async run(ctx) {
    const env = await startBenchEnvironment({ sim: { sizeScale: SIZE_SCALE } });
    let events: JobEventLog | undefined;
    try {
      events = await JobEventLog.open(env.settings);
      return await measure(ctx, env, events);
    } finally {
      await events?.close();
      await env.close();
    }
  },
};
