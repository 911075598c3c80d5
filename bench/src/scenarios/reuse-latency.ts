/**
 * Scenario `reuse-latency` (issue 6, item 2): how long a tenant waits for a product that is
 * already in the global cache, against the floor of what such a job must do on S3.
 *
 * - Setup: one worker process; one L2A product's B02 B03 B04 B08 downloaded once (a seed job).
 * - Ours: jobs for that product from fresh tenants, one at a time (latency, not queueing): the
 *   client clock (`performance.now()`) right before `POST /v1/downloads` → this process receiving
 *   BullMQ's `completed` event of the job (see measure/job-events.ts). Every job must be `reused`
 *   and copy the 4 bands.
 * - Baseline: 4 bare parallel `CopyObject` calls of the same 4 objects from the global bucket into
 *   a fresh bucket (created beforehand, untimed), on the same S3 client and server.
 * - Also timed, to split the gap: the S3 calls the pipeline makes for such a job, bare, in its
 *   order (4 HEAD in the global bucket; HeadBucket + CreateBucket of the new tenant bucket;
 *   4 × (HEAD + CopyObject)) through the worker's own `ObjectStore` code
 *   (measure/reuse-s3-calls.ts), and its Postgres statements, bare, through the same repository
 *   functions (measure/reuse-db-calls.ts). What remains is the API, Redis/BullMQ and worker CPU.
 * - The four kinds of sample are interleaved (their order rotates each round) so drift of the
 *   shared machine affects all of them; a few warm-up rounds are discarded.
 *
 * Where the job's time goes comes from BullMQ's own timestamps (`timestamp` when the API added
 * the job, `processedOn` when a worker took it, `finishedOn` when it finished) and the job row's
 * `duration_ms` (the processor's run, from `started_at`).
 */
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { parseProductName } from '@scenecache/core';
import { findJobById, findScene } from '@scenecache/db';
import { ObjectStore } from '@scenecache/storage';
import { startBenchEnvironment, type BenchEnvironment } from '../bench-environment.js';
import { productSet } from '../bench-jobs.js';
import { JobEventLog } from '../measure/job-events.js';
import { timePipelineDbCalls } from '../measure/reuse-db-calls.js';
import { timeBareCopies, timePipelineS3Calls, type PipelineS3CallsTiming } from '../measure/reuse-s3-calls.js';
import { roundStats, roundTo, summarize, type SampleStats } from '../measure/sample-stats.js';
import type { BenchContext, Figure, Scenario, ScenarioResult } from '../scenario.js';

/** The bands of the "4-band product": the four 10 m bands. */
const BANDS = ['B02', 'B03', 'B04', 'B08'];

/** Samples of each kind (after warm-up): full / quick. */
const SAMPLES = { full: 100, quick: 10 } as const;

/** Warm-up rounds (each kind once per round), not counted: JIT, connection pools, s3rver caches. */
const WARMUP = { full: 5, quick: 2 } as const;

/**
 * cdse-sim's size factor: 10 m bands of ~1.2–1.35 MB instead of 118–135 MB, so the 300 tenant
 * copies of a full run stay small on disk. The ratio compares copies of the same bytes either way.
 */
const SIZE_SCALE = 0.01;

/** Longest wait for one job (ms): far above any sample, so only a stuck job trips it. */
const JOB_TIMEOUT_MS = 30_000;

/** One job sample: client-side times (ms) and the job's BullMQ/DB timestamps. */
interface JobSample {
  jobId: string;
  /** `performance.now()` before the POST → `completed` received. */
  latencyMs: number;
  /** POST → its 202 answer. */
  httpMs: number;
  /** `Date.now()` before the POST (for BullMQ's timestamps, which are `Date.now()` of their process). */
  sentAt: number;
  /** When this process received `completed` (`Date.now()`). */
  completedReceivedAt: number;
}

/** Where one job's time went (ms), from its BullMQ timestamps and row. */
interface JobBreakdown {
  /** client sent the POST → the API added the job to Redis (BullMQ `timestamp`). */
  toQueueMs: number;
  /** added → a worker took it (`processedOn − timestamp`). */
  pickupMs: number;
  /** taken → finished (`finishedOn − processedOn`). */
  processingMs: number;
  /** The processor's own measure: `started_at` (row marked active) → result (`duration_ms`). */
  pipelineMs: number;
  /** finished → this process received `completed`. */
  noticeMs: number;
}

/** POST one download; its job id. @throws on a non-202 answer. */
async function postDownload(apiUrl: string, tenantId: string, sceneId: string): Promise<string> {
  const res = await fetch(`${apiUrl}/v1/downloads`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tenant_id: tenantId, scene_id: sceneId, bands: BANDS }),
  });
  const body = (await res.json()) as { job_id?: string };
  if (res.status !== 202 || !body.job_id) throw new Error(`POST /v1/downloads: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.job_id;
}

/** The scenario's measurements (see the module comment). */
async function measure(ctx: BenchContext, env: BenchEnvironment, events: JobEventLog): Promise<ScenarioResult> {
  const samples = ctx.quick ? SAMPLES.quick : SAMPLES.full;
  const warmup = ctx.quick ? WARMUP.quick : WARMUP.full;
  const { settings } = env;
  // One L2A product (the second name of a fresh set: productSet alternates L1C, L2A).
  const productName = productSet(2, 2)[1]!;
  const sceneId = parseProductName(productName).sceneId;

  const loadAtStart = loadavg()[0]!;
  await env.spawnWorkers(1);
  ctx.log(`reuse-latency: caching ${sceneId} (${BANDS.join(' ')}) with a seed job`);
  const seedId = await postDownload(env.apiUrl, 'seed', productName);
  const [seedEvent] = await events.waitForFinished([seedId], 120_000);
  const seedRow = await findJobById(env.db, seedId);
  if (seedEvent?.event !== 'completed' || seedRow?.cache_status !== 'downloaded') {
    throw new Error(`the seed job did not download the product (${seedEvent?.event}, ${seedRow?.cache_status}, ${seedRow?.error_message})`);
  }
  const cacheRow = await findScene(env.db, sceneId);
  const cached = BANDS.map((id) => cacheRow?.bands[id]);
  if (cached.some((b) => b === undefined)) throw new Error(`the cache row of ${sceneId} lacks some of ${BANDS.join(' ')}`);
  const objects = cached.map((b) => ({ key: b!.key, size: b!.size }));
  const keysByBand = Object.fromEntries(BANDS.map((id, i) => [id, cached[i]!.key]));
  const bytesPerJob = objects.reduce((sum, o) => sum + o.size, 0);

  const client = env.s3.client;
  // The worker's own S3 code, with its own bucket cache (a fresh bucket per sample is created).
  const store = new ObjectStore(client);
  const bucketOf = (label: string): string => `${settings.tenantBucketPrefix}${label}`;

  const runJob = async (i: number): Promise<JobSample> => {
    const sentAt = Date.now();
    const t0 = performance.now();
    const jobId = await postDownload(env.apiUrl, `reuse-${i}`, productName);
    const httpMs = performance.now() - t0;
    const [done] = await events.waitForFinished([jobId], JOB_TIMEOUT_MS);
    if (done!.event !== 'completed') throw new Error(`job ${jobId} failed: ${done!.failedReason}`);
    return { jobId, latencyMs: done!.receivedPerf - t0, httpMs, sentAt, completedReceivedAt: done!.receivedAt };
  };

  const runBareCopies = async (i: number): Promise<number> => {
    const bucket = bucketOf(`copy-${i}`);
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return timeBareCopies(client, settings.globalBucket, bucket, objects);
  };

  const jobs: JobSample[] = [];
  const bare: number[] = [];
  const s3Calls: PipelineS3CallsTiming[] = [];
  const dbCalls: number[] = [];
  const total = warmup + samples;
  ctx.log(`reuse-latency: ${warmup} warm-up + ${samples} rounds of (job, 4 bare CopyObject, the pipeline's S3 calls, its Postgres statements), interleaved`);
  for (let round = 0; round < total; round++) {
    const counted = round >= warmup;
    // Rotate the order so no kind always runs first (right after the previous round's writes).
    const kinds = [0, 1, 2, 3].map((k) => (k + round) % 4);
    for (const kind of kinds) {
      if (kind === 0) {
        const s = await runJob(round);
        if (counted) jobs.push(s);
      } else if (kind === 1) {
        const ms = await runBareCopies(round);
        if (counted) bare.push(ms);
      } else if (kind === 2) {
        const sample = await timePipelineS3Calls(store, settings.globalBucket, bucketOf(`seq-${round}`), objects);
        if (counted) s3Calls.push(sample);
      } else {
        const tenantId = `rec-${round}`;
        const ms = await timePipelineDbCalls(env.db, { jobId: randomUUID(), tenantId, sceneId, keys: keysByBand, tenantBucket: bucketOf(tenantId), bytesCopied: bytesPerJob });
        if (counted) dbCalls.push(ms);
      }
    }
    if ((round + 1) % 20 === 0 || round + 1 === total) ctx.log(`reuse-latency: ${round + 1}/${total} rounds`);
  }

  // Every job must have reused the cache and copied the 4 bands (a fresh tenant has none).
  const breakdowns: JobBreakdown[] = [];
  for (const s of jobs) {
    const row = await findJobById(env.db, s.jobId);
    if (row?.status !== 'completed' || row.cache_status !== 'reused' || Number(row.bytes_copied) !== bytesPerJob) {
      throw new Error(`job ${s.jobId}: expected a reused job copying ${bytesPerJob} bytes, got ${row?.status}/${row?.cache_status}/${row?.bytes_copied}`);
    }
    const job = await events.job(s.jobId);
    if (job?.processedOn === undefined || job.finishedOn === undefined) continue; // no longer kept by BullMQ
    breakdowns.push({
      toQueueMs: job.timestamp - s.sentAt,
      pickupMs: job.processedOn - job.timestamp,
      processingMs: job.finishedOn - job.processedOn,
      pipelineMs: Number(row.duration_ms),
      noticeMs: s.completedReceivedAt - job.finishedOn,
    });
  }

  const ours = summarize(jobs.map((s) => s.latencyMs));
  const base = summarize(bare);
  const s3 = summarize(s3Calls.map((c) => c.totalMs));
  const pg = summarize(dbCalls);
  const http = summarize(jobs.map((s) => s.httpMs));
  const part = (f: (b: JobBreakdown) => number): SampleStats => roundStats(summarize(breakdowns.map(f)));
  const breakdown = {
    to_queue_ms: part((b) => b.toQueueMs),
    pickup_ms: part((b) => b.pickupMs),
    processing_ms: part((b) => b.processingMs),
    pipeline_duration_ms: part((b) => b.pipelineMs),
    completion_notice_ms: part((b) => b.noticeMs),
  };
  ctx.log(
    `reuse-latency: job p50 ${roundTo(ours.p50)} ms / p95 ${roundTo(ours.p95)} ms; 4 bare CopyObject p50 ${roundTo(base.p50)} / p95 ${roundTo(base.p95)} ms; ` +
      `the pipeline's S3 calls p50 ${roundTo(s3.p50)} ms, its Postgres statements p50 ${roundTo(pg.p50)} ms`,
  );

  const where =
    `p50 split: to queue ${breakdown.to_queue_ms.p50} ms (HTTP answer ${roundTo(http.p50)}), pickup ${breakdown.pickup_ms.p50}, ` +
    `processing ${breakdown.processing_ms.p50} (its S3 calls alone, bare: ${roundTo(s3.p50)}; its Postgres statements alone, bare: ${roundTo(pg.p50)}), notice ${breakdown.completion_notice_ms.p50}`;
  const figures: Figure[] = [
    {
      name: 'reuse latency p50: enqueue → completed, cached 4-band product',
      value: roundTo(ours.p50),
      unit: 'ms',
      baseline: { name: '4 parallel bare CopyObject, p50', value: roundTo(base.p50) },
      ratio: roundTo(ours.p50 / base.p50, 2),
      note: `${jobs.length} sequential jobs (fresh tenants, 1 worker process) vs ${bare.length} bare copies, interleaved; ${where}`,
    },
    {
      name: 'reuse latency p95: enqueue → completed, cached 4-band product',
      value: roundTo(ours.p95),
      unit: 'ms',
      baseline: { name: '4 parallel bare CopyObject, p95', value: roundTo(base.p95) },
      ratio: roundTo(ours.p95 / base.p95, 2),
      note: `max ${roundTo(ours.max)} ms (bare copies max ${roundTo(base.max)} ms); ${(bytesPerJob / 1e6).toFixed(2)} MB copied per job`,
    },
  ];
  return {
    id: scenario.id,
    title: scenario.title,
    figures,
    details: {
      load_average_1m: { start: roundTo(loadAtStart, 2), end: roundTo(loadavg()[0]!, 2) },
      product: sceneId,
      bands: BANDS,
      bytes_per_job: bytesPerJob,
      sim_size_scale: SIZE_SCALE,
      worker_processes: 1,
      warmup_rounds: warmup,
      samples,
      job_latency_ms: roundStats(ours),
      bare_copy_ms: roundStats(base),
      pipeline_s3_calls_ms: roundStats(s3),
      pipeline_s3_calls_by_step_ms: {
        cache_heads: roundStats(summarize(s3Calls.map((c) => c.cacheHeadsMs))),
        tenant_bucket: roundStats(summarize(s3Calls.map((c) => c.bucketMs))),
        head_and_copy: roundStats(summarize(s3Calls.map((c) => c.copiesMs))),
      },
      pipeline_db_calls_ms: roundStats(pg),
      post_answer_ms: roundStats(http),
      breakdown_ms: breakdown,
      breakdown_note:
        'to_queue: client POST → BullMQ job timestamp; pickup: timestamp → processedOn; processing: processedOn → finishedOn; ' +
        'pipeline_duration: the job row duration_ms (row marked active → result); completion_notice: finishedOn → this process got `completed`. ' +
        'pipeline_s3_calls: the S3 calls of a reused job for a new tenant, bare, from this process (4 HEAD; HeadBucket + CreateBucket; 4 × (HEAD + CopyObject)). ' +
        'pipeline_db_calls: its Postgres statements, bare, from this process (row active, cache row read, tenant scene upsert, cache hit, row completed).',
      job_latency_samples_ms: jobs.map((s) => roundTo(s.latencyMs, 2)),
      bare_copy_samples_ms: bare.map((ms) => roundTo(ms, 2)),
      pipeline_s3_calls_samples_ms: s3Calls.map((c) => roundTo(c.totalMs, 2)),
    },
  };
}

/** The `reuse-latency` scenario. */
export const scenario: Scenario = {
  id: 'reuse-latency',
  title: 'Reuse latency: enqueue → completed for a cached 4-band product',
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
