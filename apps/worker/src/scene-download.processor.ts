/**
 * The scene download processor: one BullMQ job = one tenant's bands of one product (DESIGN.md,
 * "The pipeline"). It reads as the seven steps, each a named function returning a value:
 *
 * 1. {@link validatePayload} — bad input fails at once, no retries;
 * 2. {@link readCache} — which bands the global cache serves (HEAD-verified);
 * 3. {@link claimDownloads} — the product's scene lock (shared; exclusive for a moment to reset an
 *    invalidated product or read its metadata from CDSE once), the band lock of each missing
 *    (product, band) file, the transfer budget, and one fair upstream slot per file; what cannot
 *    be had now is left as targets to wait for;
 * 4. {@link downloadBands} — every claimed file at once, each streamed from CDSE into the global
 *    bucket and verified against the manifest (or a verified object left by an earlier run adopted);
 * 5. registering each band as soon as it is stored (inside step 4, {@link storeAndRegisterBand}),
 *    then releasing its band lock and slot and waking whoever waits for them;
 *    ({@link getOutOfTheWay} when some bands are still downloaded by others or wait for a slot);
 * 6. {@link fanOut} — server-side copy of every requested band into the tenant bucket;
 * 7. {@link recordResult} — `tenant_scenes`, the reuse counter, and the job's result.
 *
 * Between the steps the run checks whether its cancel was requested (job-cancellation.ts): a
 * cancelled run releases what it holds and ends `cancelled`; it never stops inside step 4–5, so a
 * band other jobs wait for is always stored and registered. Every end recorded (completed, failed
 * for good, cancelled) is announced (job-end-announcer.ts: long-polls, the completion callback).
 */
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Kysely } from 'kysely';
import {
  downloadJobDataSchema,
  failpoint,
  findBandFile,
  isDependencyUnavailable,
  MetadataParseError,
  metadataFilesOf,
  parseProductLevelMetadata,
  parseTileMetadata,
  ScenecacheError,
  toScenecacheError,
  UpstreamError,
  validateDownload,
  ValidationError,
  type Band,
  type DownloadJobData,
  type DownloadJobResult,
  type GranuleMetadata,
  type Logger,
  type SafeFile,
  type Settings,
  type ValidatedDownload,
} from '@scenecache/core';
import {
  findUpstreamProduct,
  lacksStacMetadata,
  markJobActive,
  markJobCancelled,
  markJobCompleted,
  markJobFailed,
  markJobRequeued,
  recordCacheHit,
  recordJobWait,
  recordUpstreamTransfer,
  storeUpstreamProduct,
  upsertTenantScene,
  upstreamWindow,
  type AdvisoryLocks,
  type CachedBand,
  type DB,
  type DownloadJobRow,
  type SceneLease,
  type UpstreamProduct,
  type UpstreamWindow,
} from '@scenecache/db';
import type { CdseClient } from '@scenecache/copernicus';
import { bandObjectKey, bandObjectMetadata, type CacheRead, type GlobalCache } from '@scenecache/global-cache';
import type { ObjectStore } from '@scenecache/storage';
import { transferBand } from './band-transfer.js';
import { cancelRequested, JobCancelledError, throwIfCancelRequested } from './job-cancellation.js';
import type { JobEndAnnouncer } from './job-end-announcer.js';
import { waitingForOf, type SceneWaiters, type SlotBaton, type WaitTarget } from './scene-waiters.js';
import { copyToTenant, CopySourceGoneError, type TenantCopy } from './tenant-copy.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** Everything the processor needs; built once per worker process. */
export interface WorkerDeps {
  settings: Settings;
  db: Kysely<DB>;
  locks: AdvisoryLocks;
  store: ObjectStore;
  /** The global cache (table and bucket). */
  cache: GlobalCache;
  cdse: CdseClient;
  waiters: SceneWaiters;
  logger: Logger;
  /** Identifies this process in `download_jobs.worker_id` (host:pid). */
  workerId: string;
  /** Prometheus metrics the processor records into; none recorded when absent. */
  metrics?: WorkerMetrics;
  /** Announces the jobs' ends (long-polls, completion callbacks); none announced when absent. */
  jobEnds?: JobEndAnnouncer;
}

type SceneJob = Job<DownloadJobData, DownloadJobResult>;

/** One run of one job: what every step reads. */
interface JobRun {
  deps: WorkerDeps;
  job: SceneJob;
  token: string | undefined;
  /** Aborted when the job is cancelled (shutdown, lost BullMQ lock). */
  signal: AbortSignal;
  request: ValidatedDownload;
  log: Logger;
  startedAt: Date;
  /** Slots this run was woken for (a freed slot; a product's burst: named files): it may take them even while others wait (see SceneWaiters). */
  baton: SlotBaton;
}

/** A band file this run will put in the global bucket: streamed from CDSE, or adopted. */
interface ClaimedFile {
  band: Band;
  file: SafeFile;
  key: string;
  /** The upstream slot it streams on; `undefined` when a verified object is adopted. */
  slot: number | undefined;
  /** The job that stored the adopted object (adoption only). */
  adoptedFrom?: string | undefined;
  adoptedEtag?: string;
}

/** What step 3 got: files to put in the bucket now, bands cached meanwhile, what to wait for. */
interface Claim {
  /** Holds the scene lock (shared), the claimed files' band locks and slots; none when the scene lock was not to be had. */
  lease: SceneLease | undefined;
  metadata: UpstreamProduct | undefined;
  files: ClaimedFile[];
  /** Bands found registered on the re-read under their band lock. */
  cachedMeanwhile: Map<string, CachedBand>;
  /**
   * Files no other job downloads that got no slot (largest first): the run queues for a slot for
   * them — unless one of its own streams hands its slot on to them first (see {@link downloadBands}).
   */
  queued: Array<{ band: Band; file: SafeFile }>;
  /** The transfer budget as this claim counts it. */
  budget: TransferBudget;
  /** What the job waits for once the claimed files are in (empty: nothing). */
  waitFor: WaitTarget[];
  /**
   * Slots of the run's baton to pass on: those it did not take — none when the run queues for a
   * slot again (every waiter would run in turn only to queue again).
   */
  batonLeft: number;
}

/** What step 4 put in the bucket and the table. */
interface Downloaded {
  /** Bands registered by this run, by band id. */
  bands: Map<string, CachedBand>;
  /** The product was invalidated while its bands streamed: nothing could be registered. */
  invalidatedMeanwhile: boolean;
}

/** Build the BullMQ processor function `(job, token, signal) → result`. */
export function createSceneDownloadProcessor(deps: WorkerDeps) {
  const { settings, db, logger } = deps;

  return async function processSceneDownload(job: SceneJob, token?: string, signal?: AbortSignal): Promise<DownloadJobResult> {
    const jobId = job.id!;
    const log = logger.child({ jobId, tenantId: job.data?.tenant_id, sceneId: job.data?.scene_id });
    const attempt = job.attemptsMade + 1;
    // Woken for freed upstream slots? Then a slot must not idle if this job does not take it.
    const baton = await deps.waiters.takeSlotBaton(jobId);
    let batonLeft = baton.slots;
    try {
      const request = validatePayload(job, settings.tenantBucketPrefix);
      const activeRow = await markJobActive(db, {
        id: jobId,
        tenantId: request.tenantId,
        sceneId: request.product.sceneId,
        bands: request.bands.map((b) => b.id),
        workerId: deps.workerId,
        attempt,
      });
      // Cancelled while it was queued (the API could not take it out of the queue in time).
      if (activeRow.status === 'cancelled' || activeRow.cancel_requested_at !== null) throw new JobCancelledError(jobId);
      const run: JobRun = { deps, job, token, signal: signal ?? new AbortController().signal, request, log, startedAt: activeRow.started_at ?? new Date(), baton };
      const result = await runPipeline(run, (left) => (batonLeft = left));
      const completed = await markJobCompleted(db, jobId, result, deps.workerId);
      deps.metrics?.jobCompleted(result);
      log.info({ cacheStatus: result.cache_status, bandsDownloaded: result.bands_downloaded, bandsReused: result.bands_reused, durationMs: result.duration_ms }, 'job completed');
      if (completed) await deps.jobEnds?.announce(completed, log);
      return result;
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      if (err instanceof JobCancelledError) return await endCancelled(deps, job, token, log);
      if (signal?.aborted) {
        // Cancelled (shutdown, or our job lock was lost): hand the job back without spending an
        // attempt. With a lost lock the move fails and the stalled check hands it back instead.
        log.warn({ reason: String(signal.reason) }, 'job cancelled; handing it back');
        return await handBack(deps, job, token, 0, log, { recordInDb: true });
      }
      if (isDependencyUnavailable(err) || isLockLost(err)) {
        // Postgres, Redis or S3 is unreachable (or the advisory-lock session died with it): not
        // the job's fault. Come back later without spending an attempt, however long the outage
        // lasts — retries would burn every attempt within seconds and fail the job where the
        // failure cannot even be recorded.
        const delayMs = Math.max(settings.jobBackoffMs, 1_000) * (1 + Math.random());
        deps.metrics?.dependencyOutage();
        log.warn({ err, delayMs: Math.round(delayMs) }, 'a dependency is unavailable; job delayed without spending an attempt');
        return await handBack(deps, job, token, delayMs, log, { recordInDb: false });
      }
      const e = toScenecacheError(err);
      if (e.code === 'upstream_rate_limited') {
        // A 429 is a rate limit, not a failure: come back later without spending an attempt.
        const retryAfterMs = (e instanceof UpstreamError ? e.retryAfterMs : undefined) ?? 10_000;
        if (await cancelRequested(db, jobId)) return await endCancelled(deps, job, token, log);
        log.warn({ retryAfterMs }, 'upstream rate limited; job delayed');
        return await handBack(deps, job, token, retryAfterMs + Math.random() * retryAfterMs, log, { recordInDb: true });
      }
      const final = !e.retryable || attempt >= (job.opts.attempts ?? 1);
      // A retry would only be cancelled at its start: end it now.
      if (!final && (await cancelRequested(db, jobId))) return await endCancelled(deps, job, token, log);
      log.error({ err: e, code: e.code, attempt, final }, final ? 'job failed' : 'job attempt failed; will retry');
      const failedRow = await recordFailure(deps, job, attempt, e.code, e.message, final).catch((dbErr: unknown) => {
        log.error({ err: dbErr }, 'could not record the failure');
        return undefined;
      });
      if (final) deps.metrics?.jobFailed();
      if (final && failedRow) await deps.jobEnds?.announce(failedRow, log);
      if (!e.retryable) throw new UnrecoverableError(`${e.code}: ${e.message}`);
      throw e;
    } finally {
      if (baton.bands) await deps.waiters.releaseReservation(jobId).catch((err: unknown) => log.warn({ err }, 'could not release the slot reservation'));
      if (batonLeft > 0) {
        await deps.waiters.wakeSlotWaiters(batonLeft).catch((err: unknown) => log.warn({ err }, 'could not pass the slot wake-up on'));
      }
    }
  };
}

/** Times a run reads the cache again when a cached object left the bucket during its copy (eviction). */
const COPY_SOURCE_GONE_PASSES = 3;

/**
 * Steps 2–7 of one run; `onClaimed` gets the slots of the run's baton left to pass on (see
 * {@link Claim.batonLeft}). When a band's object leaves the global bucket between the cache read
 * and the copy (evicted or expired by maintenance, invalidated by an admin), steps 2–7 run again:
 * the re-read finds the band missing and downloads it (`cache_status: downloaded`), no attempt spent.
 */
async function runPipeline(run: JobRun, onClaimed: (batonLeft: number) => void): Promise<DownloadJobResult> {
  for (let pass = 1; ; pass++) {
    try {
      return await runPipelineOnce(run, onClaimed);
    } catch (err) {
      if (!(err instanceof CopySourceGoneError) || pass >= COPY_SOURCE_GONE_PASSES) throw err;
      run.log.info({ band: err.bandId, key: err.sourceKey, pass }, 'a cached band left the global bucket during the copy; reading the cache again');
    }
  }
}

async function runPipelineOnce(run: JobRun, onClaimed: (batonLeft: number) => void): Promise<DownloadJobResult> {
  const read = await readCache(run);
  await throwIfCancelRequested(run.deps.db, run.job.id!);
  let cached: ReadonlyMap<string, CachedBand> = read.cached;
  if (read.missing.length > 0) {
    const claim = await claimDownloads(run, read).finally(async () => {
      // The slots a burst's preparer reserved for this run are taken now, or free for others.
      if (run.baton.bands) await run.deps.waiters.releaseReservation(run.job.id!);
    });
    onClaimed(claim.batonLeft);
    let downloaded: Downloaded;
    try {
      // Cancelled before any download started: the claim is released (its band locks' waiters
      // are woken and download the bands themselves).
      await throwIfCancelRequested(run.deps.db, run.job.id!);
      downloaded = await downloadBands(run, claim);
    } finally {
      await releaseClaim(run, claim);
    }
    // What this run streamed is registered now: a cancel stops it before it waits or copies.
    await throwIfCancelRequested(run.deps.db, run.job.id!);
    if (downloaded.invalidatedMeanwhile) {
      // Its bands were stored but the row was invalidated meanwhile: run again (no attempt spent);
      // the next run resets the product and downloads them.
      run.log.info('the product was invalidated during the download: running again');
      return handBack(run.deps, run.job, run.token, 0, run.log, { recordInDb: true });
    }
    const waitFor = claim.queued.length > 0 ? [...claim.waitFor, slotTarget(run, claim.queued[0]!.file.size)] : claim.waitFor;
    if (waitFor.length > 0) return getOutOfTheWay(run, waitFor);
    cached = new Map([...read.cached, ...claim.cachedMeanwhile, ...downloaded.bands]);
  }
  const bands = requestedEntries(run, cached);
  const copy = await fanOut(run, bands);
  return recordResult(run, bands, copy);
}

/** Waiting for an upstream slot, for a file of `bytes` (the largest the run still needs a slot for). */
function slotTarget(run: JobRun, bytes: number): WaitTarget {
  return { kind: 'upstream-slot', tenantId: run.request.tenantId, priority: run.job.opts.priority ?? 0, bytes };
}

/**
 * Step 1: the payload's shape (zod) and meaning (product name, bands, tenant id).
 * @throws ValidationError `invalid_payload` (and the codes of `validateDownload`), not retried.
 */
function validatePayload(job: SceneJob, tenantBucketPrefix: string): ValidatedDownload {
  const parsed = downloadJobDataSchema.safeParse(job.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'data';
    throw new ValidationError('invalid_payload', `job data ${field}: ${issue.message}`, field);
  }
  return validateDownload(parsed.data, tenantBucketPrefix);
}

/** Step 2: what the global cache serves of the requested bands, without any lock. */
function readCache(run: JobRun): Promise<CacheRead> {
  return run.deps.cache.read(run.request.product.sceneId, run.request.bands, run.log);
}

/**
 * Step 3: claim what this run can download now.
 *
 * - The product's scene lock: shared, so other jobs download its other bands at the same time;
 *   exclusive first when the product must be prepared (its row was invalidated: reset it; its
 *   metadata is not stored yet: look it up, read `manifest.safe` and the metadata files — once per
 *   product, for every job), then downgraded to shared without letting go. Not to be had → wait for the scene.
 * - Then each missing file, largest first, while the run may take slots (as many as are free;
 *   while other jobs queue for slots, only the one slot this run's wake-up baton stands for —
 *   fair hand-out, see SceneWaiters):
 *   - its band lock; held by another job → wait for that band;
 *   - the cache re-read under the band lock (double-checked): registered meanwhile → served;
 *   - a verified object already at its key is adopted: no slot, no upstream byte;
 *   - the monthly transfer budget: a file that would take the window past it → wait for the budget;
 *   - an upstream slot; none free → the run takes no more.
 * - The files left unclaimed take no band lock: those another job holds → wait for that band;
 *   the rest → queue for a slot, as large as the largest of them.
 *
 * Every band lock released without a download wakes that band's waiters.
 *
 * On any error everything taken is released before the error propagates.
 */
async function claimDownloads(run: JobRun, read: CacheRead): Promise<Claim> {
  const { deps, request, log } = run;
  const { settings, locks, cache, waiters } = deps;
  const { product } = request;
  const sceneId = product.sceneId;
  let metadata = await findUpstreamProduct(deps.db, sceneId);
  const prepare = metadata === undefined || lacksStacMetadata(metadata) || read.invalidated;
  const mode = prepare ? 'exclusive' : 'shared';
  const lease = await locks.tryAcquireScene(sceneId, mode);
  const claim: Claim = { lease, metadata, files: [], cachedMeanwhile: new Map(), queued: [], budget: transferBudget(run), waitFor: [], batonLeft: run.baton.slots };
  if (!lease) {
    claim.waitFor.push({ kind: 'scene', sceneId, mode });
    return claim;
  }
  try {
    let planned: ReadonlySet<string> | undefined;
    if (prepare) {
      await cache.resetInvalidated(sceneId, log);
      if (metadata === undefined || lacksStacMetadata(metadata)) metadata = await fetchUpstreamProduct(run, metadata);
      claim.metadata = metadata;
      await lease.downgradeToShared();
      planned = await planBurst(run, metadata, read);
    }
    await failpoint(settings.failpoints, 'scene-locked', log);
    // Largest files first: they take the first slots, so the product's burst ends as early as the
    // slots allow (longest-processing-time-first), not with one big file streaming alone at the end.
    // Files named by a burst plan (or the baton it granted) come before the rest.
    const named = new Set(planned ?? run.baton.bands ?? []);
    const files = read.missing
      .map((band) => ({ band, file: bandFileOf(metadata!, band, run) }))
      .sort((x, y) => Number(named.has(y.band.id)) - Number(named.has(x.band.id)) || y.file.size - x.file.size);
    // While upstream slots are contended (jobs queue for them, or a burst's preparer reserved them),
    // a job takes only the slots of its baton (see SceneWaiters), and takes no band lock beyond the
    // files it claims: a band lock held for a moment by a job that will not stream the file keeps
    // it from the one that would. A preparer takes what its burst plan left it.
    let allowance = planned ? planned.size : (await waiters.slotsContended()) ? run.baton.slots : Number.POSITIVE_INFINITY;
    let slotsTaken = 0;
    const unclaimed: typeof files = [];
    for (const f of files) {
      if (allowance === 0) {
        unclaimed.push(f);
        continue;
      }
      const outcome = await claimFile(run, claim, f);
      if (outcome === 'no-slot') {
        allowance = 0;
        unclaimed.push(f);
      } else if (typeof outcome === 'object') {
        claim.files.push(outcome);
        if (outcome.slot !== undefined) {
          allowance--;
          slotsTaken++;
        }
      }
    }
    claim.batonLeft = Math.max(0, run.baton.slots - slotsTaken);
    if (unclaimed.length > 0) {
      // Not claimed: wait for the files other jobs download; queue for a slot for the rest.
      // Queuing spends the baton: passing it on would only run every waiter in turn to queue again.
      const elsewhere = await lease.bandsLockedElsewhere(unclaimed.map((f) => f.band.id));
      for (const f of unclaimed) if (elsewhere.has(f.band.id)) claim.waitFor.push({ kind: 'band', sceneId, bandId: f.band.id });
      claim.queued = unclaimed.filter((f) => !elsewhere.has(f.band.id));
      if (claim.queued.length > 0) claim.batonLeft = 0;
    }
    // Jobs that waited for the preparation need the lock shared only: they may come in now — after
    // this job has claimed its own (largest-first) files, so the burst's first slots go to them.
    if (prepare) await waiters.wake({ kind: 'scene', sceneId, mode: 'shared' });
    return claim;
  } catch (err) {
    await releaseClaim(run, claim);
    throw err;
  }
}

/**
 * A new product's burst, planned by the job that prepared it (it holds the scene lock, shared
 * again): when no job queues for upstream slots, the free slots go at once to the largest files
 * that this job and the jobs waiting for the preparation want (largest first: the burst ends as
 * early as the files allow), each to a job that wants it — as batons of several slots for the
 * waiting jobs ({@link SceneWaiters.grantBatons}), woken right after this job's claim.
 * @returns the band ids this job streams itself (a slot each; possibly none), or `undefined` when
 *   nothing was planned (slots contended or none free, nobody waiting): then the usual rule applies.
 */
async function planBurst(run: JobRun, metadata: UpstreamProduct, read: CacheRead): Promise<ReadonlySet<string> | undefined> {
  const { waiters, locks, settings } = run.deps;
  if (await waiters.slotsContended()) return undefined;
  const others = await waiters.sceneWaiterPayloads(run.request.product.sceneId);
  if (others.length === 0) return undefined;
  const free = settings.upstreamConcurrency - (await locks.upstreamSlotsInUse(settings.upstreamConcurrency));
  if (free <= 0) return undefined;
  // Every wanted file (SAFE path → band id, size, the jobs that want it), this job first.
  const wanted = new Map<string, { bandId: string; size: number; jobs: string[] }>();
  const want = (jobId: string, bands: readonly Band[]): void => {
    for (const band of bands) {
      const file = findBandFile(metadata.files, band);
      if (!file) continue;
      const entry = wanted.get(file.path) ?? { bandId: band.id, size: file.size, jobs: [] };
      if (!entry.jobs.includes(jobId)) entry.jobs.push(jobId);
      wanted.set(file.path, entry);
    }
  };
  const self = run.job.id!;
  want(self, read.missing);
  for (const { jobId, data } of others) {
    const parsed = downloadJobDataSchema.safeParse(data);
    if (!parsed.success) continue;
    try {
      want(jobId, validateDownload(parsed.data, settings.tenantBucketPrefix).bands);
    } catch {
      // A payload that fails validation fails in its own run; it wants nothing here.
    }
  }
  const planned = [...wanted.values()].sort((a, b) => b.size - a.size).slice(0, free);
  const mine = new Set<string>();
  const grants = new Map<string, string[]>();
  for (const { bandId, jobs } of planned) {
    if (jobs[0] === self) mine.add(bandId);
    else grants.set(jobs[0]!, [...(grants.get(jobs[0]!) ?? []), bandId]);
  }
  await waiters.grantBatons(grants);
  run.log.info({ freeSlots: free, files: wanted.size, waiting: others.length, bands: planned.map((p) => p.bandId), own: [...mine] }, 'burst planned: the free slots to the largest wanted files');
  return mine;
}

/**
 * Claim one missing file under the run's lease: its band lock (held by another job → a band wait
 * is added to `claim.waitFor`), the cache re-read under that lock (registered meanwhile → into
 * `claim.cachedMeanwhile`), a verified object at its key to adopt (no slot), the transfer budget
 * (past it → a budget wait), and an upstream slot — `heldSlot` when one of the run's own streams
 * hands its slot on, else a free one. The band lock is released (and its waiters woken) whenever
 * the file is not claimed.
 * @returns the claimed file, `no-slot` (no free slot), or what else kept it from being claimed.
 * @throws ScenecacheError `lock_lost`; Postgres, Redis and S3 errors.
 */
async function claimFile(run: JobRun, claim: Claim, f: { band: Band; file: SafeFile }, heldSlot?: number): Promise<ClaimedFile | 'band-held' | 'cached' | 'over-budget' | 'no-slot'> {
  const { deps, request, log } = run;
  const lease = claim.lease!;
  const sceneId = request.product.sceneId;
  if (!(await lease.tryLockBand(f.band.id))) {
    claim.waitFor.push({ kind: 'band', sceneId, bandId: f.band.id });
    return 'band-held';
  }
  // Double-checked, under the band lock: the job that held it may have registered it since our
  // first read (and a band registered by someone else must not be adopted and registered again).
  const entry = (await deps.cache.read(sceneId, [f.band], log)).cached.get(f.band.id);
  if (entry) {
    claim.cachedMeanwhile.set(f.band.id, entry);
    await releaseBandLock(run, lease, f.band.id);
    return 'cached';
  }
  const key = bandObjectKey(request.product, f.file);
  const adoptable = await deps.cache.findAdoptable(key, f.file);
  if (adoptable) return { ...f, key, slot: undefined, adoptedFrom: adoptable.jobId, adoptedEtag: adoptable.etag };
  if (!(await claim.budget.fits(f.file.size))) {
    await releaseBandLock(run, lease, f.band.id);
    if (!claim.waitFor.some((t) => t.kind === 'upstream-budget')) claim.waitFor.push({ kind: 'upstream-budget' });
    return 'over-budget';
  }
  const slot = heldSlot ?? (await lease.tryAcquireUpstreamSlot(deps.settings.upstreamConcurrency));
  if (slot === undefined) {
    await releaseBandLock(run, lease, f.band.id);
    return 'no-slot';
  }
  claim.budget.take(f.file.size);
  return { ...f, key, slot };
}

/** The manifest entry of a band. @throws ScenecacheError `band_not_in_product` (not retried). */
function bandFileOf(metadata: UpstreamProduct, band: Band, run: JobRun): SafeFile {
  const file = findBandFile(metadata.files, band);
  if (!file) {
    throw new ScenecacheError('band_not_in_product', `${run.request.product.sceneId} has no ${band.id} file in its manifest`, { retryable: false, httpStatus: 404 });
  }
  return file;
}

/**
 * The product's catalogue entry, manifest and metadata files (`MTD_TL.xml`, `MTD_MSIL*.xml`: the
 * grid, CRS, sun angles and cloud cover its STAC item shows), read from CDSE and stored for every
 * later job (the caller holds the scene lock exclusive, so one job per product does this). A row
 * stored before the metadata files were read (`stored`) keeps its manifest; the catalogue entry is
 * read again for its footprint and sensing time.
 * @throws UpstreamError from the lookup, the manifest or a metadata file's download.
 */
async function fetchUpstreamProduct(run: JobRun, stored: UpstreamProduct | undefined): Promise<UpstreamProduct> {
  const { cdse, db } = run.deps;
  const { product } = run.request;
  const entry = await cdse.lookupProduct(product, { signal: run.signal });
  const files = stored?.files ?? (await cdse.getManifest(entry.Id, product.safeName, { signal: run.signal }));
  const granuleMetadata = await readGranuleMetadata(run, entry.Id, files);
  run.log.info({ cdseProductId: entry.Id, files: files.length, metadataError: granuleMetadata.error }, 'product metadata read from CDSE');
  return storeUpstreamProduct(db, {
    sceneId: product.sceneId,
    cdseProductId: entry.Id,
    product: { ...entry },
    files,
    footprint: entry.GeoFootprint,
    sensedAt: new Date(entry.ContentDate.Start),
    granuleMetadata,
  });
}

/**
 * Download (verified against the manifest, like a band file) and parse the product's tile and
 * product metadata files. A manifest without them, or a file that is not what the Products
 * Specification describes, gives a result with `error` set: the product's bands are still served.
 * @throws UpstreamError from a download.
 */
async function readGranuleMetadata(run: JobRun, productId: string, files: readonly SafeFile[]): Promise<GranuleMetadata> {
  const found = metadataFilesOf(files);
  if (!found) return { error: 'the manifest lists no MTD_TL.xml or no MTD_MSIL1C.xml/MTD_MSIL2A.xml' };
  const { safeName } = run.request.product;
  const sources = { tile: found.tile.path, product: found.product.path };
  let tileXml: string, productXml: string;
  try {
    [tileXml, productXml] = await Promise.all(
      [found.tile, found.product].map(async (file) => (await run.deps.cdse.readSmallFile(productId, safeName, file, { signal: run.signal })).toString('utf8')),
    ) as [string, string];
  } catch (err) {
    // 404: the download host does not serve a file its manifest lists. The bands may still be there.
    if (!(err instanceof UpstreamError && err.code === 'product_not_found')) throw err;
    run.log.warn({ err }, 'product metadata file not served: its STAC item lacks the projection fields');
    return { sources, error: err.message };
  }
  try {
    return { tile: parseTileMetadata(tileXml), product: parseProductLevelMetadata(productXml), sources };
  } catch (err) {
    if (!(err instanceof MetadataParseError)) throw err;
    run.log.warn({ err }, 'product metadata file not as specified: its STAC item lacks the projection fields');
    return { sources, error: err.message };
  }
}

/** The rolling 30-day transfer budget as one claim sees it: files are counted in as they are claimed. */
interface TransferBudget {
  /** Whether a file of `bytes` more fits in `UPSTREAM_MONTHLY_BYTES` next to what the window and this claim hold. Reads the window once, on first use. */
  fits(bytes: number): Promise<boolean>;
  /** Count a claimed file of `bytes` in. */
  take(bytes: number): void;
}

/** The monthly transfer budget of one claim (see {@link TransferBudget}); logs a warning the first time a file does not fit. */
function transferBudget(run: JobRun): TransferBudget {
  const limit = run.deps.settings.upstreamMonthlyBytes;
  let window: Promise<UpstreamWindow> | undefined;
  let claimed = 0;
  let warned = false;
  return {
    async fits(bytes) {
      window ??= upstreamWindow(run.deps.db);
      const w = await window;
      const fits = w.bytes + claimed + bytes <= limit;
      if (!fits && !warned) {
        warned = true;
        run.log.warn({ windowBytes: w.bytes, budget: limit, freesAt: w.oldestLeavesAt }, 'monthly upstream transfer budget reached: downloads wait');
      }
      return fits;
    },
    take(bytes) {
      claimed += bytes;
    },
  };
}

/**
 * Steps 4 and 5: put every claimed file in the global bucket at once — streamed from CDSE on its
 * slot, or adopted — and register each band as soon as it is there. Every file runs to its end
 * (success or failure) before the first failure is rethrown, so what could be stored is kept.
 *
 * When a stream's last byte has come, its slot goes on to the run's own next queued file (largest
 * first) if no waiting job's tenant is owed it more ({@link SceneWaiters.keepsSlot}: the same order
 * a freed slot is handed out in); otherwise it is released and the fairest waiter woken. A job
 * with more files than free slots thus keeps streaming instead of queuing for each file anew.
 */
async function downloadBands(run: JobRun, claim: Claim): Promise<Downloaded> {
  const downloaded: Downloaded = { bands: new Map(), invalidatedMeanwhile: false };
  if (claim.files.length === 0) return downloaded;
  const lease = claim.lease!;
  if (claim.files.some((f) => f.slot !== undefined)) {
    run.log.info({ slots: claim.files.flatMap((f) => (f.slot === undefined ? [] : [f.slot])), bands: claim.files.map((f) => f.band.id) }, 'downloading from upstream');
  }
  const running: Array<{ file: ClaimedFile; outcome: Promise<PromiseSettledResult<CachedBand | 'invalidated'>> }> = [];
  const start = (file: ClaimedFile): void => {
    const outcome = storeAndRegisterBand(run, claim.metadata!, lease, file, (slot) => handSlotOn(slot)).then(
      (value) => ({ status: 'fulfilled' as const, value }),
      (reason: unknown) => ({ status: 'rejected' as const, reason }),
    );
    running.push({ file, outcome });
  };
  // A slot whose stream has ended: to the run's next queued file, or back to the fleet.
  const handSlotOn = async (slot: number): Promise<boolean> => {
    try {
      while (claim.queued.length > 0 && !run.signal.aborted) {
        // A cancelled run starts no new download: the slot goes back to the fleet.
        if (await cancelRequested(run.deps.db, run.job.id!)) return false;
        const next = claim.queued[0];
        if (next === undefined) break;
        if (!(await run.deps.waiters.keepsSlot(run.request.tenantId, next.file.size))) return false;
        // Two of the run's streams may end at once: the other one took this file while we asked.
        if (claim.queued[0] !== next) continue;
        claim.queued.shift();
        const outcome = await claimFile(run, claim, next, slot);
        if (typeof outcome !== 'object') continue;
        if (outcome.slot === undefined) {
          start(outcome); // adopted: no slot needed; keep looking for a file to stream
          continue;
        }
        run.log.info({ slot, band: outcome.band.id }, 'downloading from upstream on the slot of a finished stream');
        start(outcome);
        return true;
      }
    } catch (err) {
      run.log.warn({ err }, 'could not hand the slot on to the next file');
    }
    return false;
  };
  for (const f of claim.files) start(f);
  for (let i = 0; i < running.length; i++) {
    const { file, outcome } = running[i]!;
    const settled = await outcome;
    if (settled.status === 'rejected') continue;
    if (settled.value === 'invalidated') downloaded.invalidatedMeanwhile = true;
    else downloaded.bands.set(file.band.id, settled.value);
  }
  const failed = (await Promise.all(running.map((r) => r.outcome))).find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
  return downloaded;
}

/**
 * One file: stream it (counting the transfer against the budget and the tenant's fair share) or
 * adopt it, register it while the lock is provably ours, then release its band lock and wake the
 * band's waiters. Its upstream slot goes back (waking the next slot waiter) as soon as the last
 * byte came from upstream, verified — or at the end, whatever happened.
 * @returns the registered entry, or `invalidated` when the row was invalidated meanwhile.
 */
async function storeAndRegisterBand(
  run: JobRun,
  metadata: UpstreamProduct,
  lease: SceneLease,
  f: ClaimedFile,
  handSlotOn: (slot: number) => Promise<boolean>,
): Promise<CachedBand | 'invalidated'> {
  const { deps, request, job } = run;
  const { settings, cache, waiters } = deps;
  const bandLog = run.log.child({ band: f.band.id, bytes: f.file.size });
  // The upstream slot is given back as soon as the file's last byte came from CDSE, verified: the
  // cap counts CDSE connections, and the upload's completion and the registration need none.
  // After a complete stream the slot may go on to the run's next file (`handSlotOn`); after a
  // failure it goes back to the fleet.
  let slotReleased: Promise<void> | undefined;
  const releaseSlot = (streamed: boolean): Promise<void> => {
    if (f.slot === undefined) return Promise.resolve();
    slotReleased ??= (async () => {
      if (streamed && (await handSlotOn(f.slot!))) return;
      await lease.releaseUpstreamSlot(f.slot!).catch((err: unknown) => bandLog.warn({ err }, 'could not release the upstream slot'));
      // One slot was freed: one slot waiter, the fairest, not all of them.
      await waiters.wakeSlotWaiters(1).catch((err: unknown) => bandLog.warn({ err }, 'could not wake a slot waiter'));
    })();
    return slotReleased;
  };
  try {
    let entry: CachedBand;
    if (f.slot === undefined) {
      bandLog.info({ key: f.key, storedBy: f.adoptedFrom }, 'adopting a verified object left by an earlier attempt');
      // Bytes this job fetched: all of them when an earlier run of this job stored it, none when another job did.
      entry = bandEntry(f, f.adoptedEtag!, undefined, job.id!, f.adoptedFrom === job.id ? f.file.size : 0);
    } else {
      const t0 = Date.now();
      // A file that failed verification twice lately is not fetched again (integrity-failures.ts).
      await deps.cdse.integrityFailures.assertNotQuarantined(request.product.safeName, f.file.path);
      await recordUpstreamTransfer(deps.db, { sceneId: request.product.sceneId, band: f.band.id, tenantId: request.tenantId, jobId: job.id!, bytes: f.file.size });
      await waiters.chargeUpstreamService(request.tenantId, f.file.size);
      const { uploadId, metadata: objectMetadata } = bandObjectMetadata(f.file, job.id!);
      const signal = AbortSignal.any([run.signal, lease.signal]);
      const etag = await transferBand({
        cdse: deps.cdse,
        store: deps.store,
        productId: metadata.cdseProductId,
        safeName: request.product.safeName,
        file: f.file,
        bucket: cache.bucket,
        key: f.key,
        metadata: objectMetadata,
        signal,
        logger: bandLog,
        onUpstreamDone: () => void releaseSlot(true),
      }).catch(async (err: unknown) => {
        // Bytes that did not match the manifest: remember it fleet-wide (the second time quarantines the file).
        if (err instanceof UpstreamError && err.code === 'upstream_integrity' && !signal.aborted) throw await deps.cdse.integrityFailures.record(request.product.safeName, f.file.path, err);
        throw err;
      });
      deps.metrics?.upstreamFile(f.file.size);
      bandLog.info({ ms: Date.now() - t0, slot: f.slot }, 'band stored in the global bucket');
      entry = bandEntry(f, etag, uploadId, job.id!, f.file.size);
    }
    await failpoint(settings.failpoints, 'bands-stored', bandLog);
    lease.throwIfLost();
    const outcome = await cache.registerBand({ product: request.product, cdseProductId: metadata.cdseProductId, bandId: f.band.id, entry });
    await failpoint(settings.failpoints, 'bands-registered', bandLog);
    return outcome === 'registered' ? entry : 'invalidated';
  } finally {
    await releaseSlot(false);
    await releaseBandLock(run, lease, f.band.id).catch((err: unknown) => bandLog.warn({ err }, 'could not release the band lock or wake its waiters'));
  }
}

/**
 * Release one band lock and wake the jobs waiting for that band. Every release wakes, also when
 * this run did not download the band (it queues for a slot, or the band was registered
 * meanwhile): a job that found the lock held while we had it registered as the band's waiter,
 * and its re-check may have run before our release — without this wake-up it would sleep until
 * its fallback delay while the file it wants goes unclaimed.
 */
async function releaseBandLock(run: JobRun, lease: SceneLease, bandId: string): Promise<void> {
  await lease.unlockBand(bandId);
  await run.deps.waiters.wake({ kind: 'band', sceneId: run.request.product.sceneId, bandId });
}

/** The cache entry of a band stored (or adopted) by `jobId`. */
function bandEntry(f: ClaimedFile, etag: string, uploadId: string | undefined, jobId: string, downloadedBytes: number): CachedBand {
  return {
    key: f.key,
    size: f.file.size,
    sha3_256: f.file.sha3_256,
    etag,
    safe_path: f.file.path,
    registered_at: new Date().toISOString(),
    job_id: jobId,
    ...(uploadId === undefined ? {} : { upload_id: uploadId }),
    downloaded_bytes: downloadedBytes,
  };
}

/**
 * Release the claim's scene lease (every lock on it) and wake the jobs waiting for what it held:
 * the scene lock, band locks still held (an error between claiming and downloading), and one
 * slot waiter per upstream slot still held.
 */
async function releaseClaim(run: JobRun, claim: Claim): Promise<void> {
  if (!claim.lease) return;
  const { waiters } = run.deps;
  const sceneId = run.request.product.sceneId;
  const bands = claim.lease.bandLocks;
  const slots = claim.lease.upstreamSlots.length;
  await claim.lease.release();
  await waiters.wake({ kind: 'scene', sceneId, mode: 'exclusive' });
  for (const bandId of bands) await waiters.wake({ kind: 'band', sceneId, bandId });
  if (slots > 0) await waiters.wakeSlotWaiters(slots);
}

/** Every requested band's entry, cached or just registered. @throws ScenecacheError `internal` when one is neither. */
function requestedEntries(run: JobRun, cached: ReadonlyMap<string, CachedBand>): Map<string, CachedBand> {
  const all = new Map<string, CachedBand>();
  for (const band of run.request.bands) {
    const entry = cached.get(band.id);
    if (!entry) throw new ScenecacheError('internal', `band ${band.id} neither cached nor fetched`, { retryable: true });
    all.set(band.id, entry);
  }
  return all;
}

/** Step 6: server-side copy every requested band into the tenant bucket. */
function fanOut(run: JobRun, bands: ReadonlyMap<string, CachedBand>): Promise<TenantCopy> {
  const { store, settings } = run.deps;
  return copyToTenant(store, settings.globalBucket, run.request.tenantBucket, bands, () => failpoint(settings.failpoints, 'tenant-copied', run.log));
}

/**
 * Step 7: upsert `tenant_scenes`, count the cache hit, and build the result. A band counts as
 * downloaded by this job when this job (this run or an earlier one) registered it having fetched
 * its bytes; a band adopted from another job's upload, or registered by another job, is reused.
 */
async function recordResult(run: JobRun, bands: ReadonlyMap<string, CachedBand>, copy: TenantCopy): Promise<DownloadJobResult> {
  const { db } = run.deps;
  const { request, job } = run;
  const sceneId = request.product.sceneId;
  const fetchedBytes = (e: CachedBand) => (e.job_id === job.id ? (e.downloaded_bytes ?? e.size) : 0);
  const bandsDownloaded = request.bands.filter((b) => fetchedBytes(bands.get(b.id)!) > 0).map((b) => b.id);
  const bandsReused = request.bands.filter((b) => fetchedBytes(bands.get(b.id)!) === 0).map((b) => b.id);
  const bytesDownloaded = request.bands.reduce((sum, b) => sum + fetchedBytes(bands.get(b.id)!), 0);
  await upsertTenantScene(db, { tenantId: request.tenantId, sceneId, bucket: request.tenantBucket, bands: copy.keys });
  if (bandsReused.length > 0) await recordCacheHit(db, sceneId);
  const cacheStatus = bandsDownloaded.length > 0 ? 'downloaded' : 'reused';
  return {
    scene_id: sceneId,
    tenant_id: request.tenantId,
    cache_status: cacheStatus,
    bands_downloaded: bandsDownloaded,
    bands_reused: bandsReused,
    bytes_downloaded: bytesDownloaded,
    bytes_copied: copy.bytesCopied,
    objects: copy.objects,
    duration_ms: Date.now() - run.startedAt.getTime(),
    message:
      cacheStatus === 'reused'
        ? `served ${bandsReused.length} band(s) from the cache`
        : `downloaded ${bandsDownloaded.length} band(s) from upstream, reused ${bandsReused.length}`,
  };
}

/**
 * Get out of the way: delay the job (freeing the worker slot; no connection is held), register
 * as a waiter of every target, then re-check each — if what we wait for was released between our
 * failed try and our registration, nobody will wake us, so we wake ourselves (or, for a slot, the
 * fairest waiter). Delayed *before* registering: a waker takes a registration for good, and a
 * promote of a job that is not delayed yet fails, so a registration taken before the delay would
 * be a lost wake-up. A job that waits for the budget alone is delayed 12 × the fallback delay
 * (a minute by default) and checks the window again then: nobody wakes it earlier.
 */
async function getOutOfTheWay(run: JobRun, targets: readonly WaitTarget[]): Promise<never> {
  const { deps, job, token, log } = run;
  const { settings, locks, waiters } = deps;
  const jobId = job.id!;
  const sceneId = run.request.product.sceneId;
  await recordJobWait(deps.db, jobId, waitingForOf(targets[0]!));
  const budgetOnly = targets.every((t) => t.kind === 'upstream-budget');
  await job.moveToDelayed(Date.now() + (budgetOnly ? settings.waiterFallbackDelayMs * 12 : settings.waiterFallbackDelayMs), token);
  for (const target of targets) {
    await waiters.register(target, jobId);
    deps.metrics?.lockWait(target.kind);
  }
  for (const target of targets) {
    if (target.kind === 'band' && (await locks.isBandFree(sceneId, target.bandId))) await waiters.promote(jobId);
    else if (target.kind === 'scene' && (await locks.isSceneFree(sceneId, target.mode))) await waiters.promote(jobId);
    // Slots reserved for a burst's batons are not free for us: their holders pass on what they don't take.
    else if (target.kind === 'upstream-slot' && !(await waiters.slotsReserved()) && (await locks.isAnyUpstreamSlotFree(settings.upstreamConcurrency))) await waiters.wakeSlotWaiters(1);
  }
  log.debug({ waitingFor: targets.map(waitingForOf) }, 'waiting; delayed');
  throw new DelayedError();
}

/**
 * Give the job back to the queue for `delayMs` without spending an attempt (BullMQ
 * `moveToDelayed` + `DelayedError`). The row goes back to `queued` first (so a worker that picks
 * the job up at once is not overwritten), unless the database is the thing that is down.
 */
async function handBack(deps: WorkerDeps, job: SceneJob, token: string | undefined, delayMs: number, log: Logger, options: { recordInDb: boolean }): Promise<never> {
  if (options.recordInDb) await markJobRequeued(deps.db, job.id!).catch((err: unknown) => log.warn({ err }, 'could not mark the job queued'));
  await job.moveToDelayed(Date.now() + delayMs, token).catch((err: unknown) => log.warn({ err }, 'could not hand the job back'));
  throw new DelayedError();
}

/** `lock_lost`: an advisory lock's session died under us (Postgres cut, restarted, or the session terminated). */
function isLockLost(err: unknown): boolean {
  return err instanceof ScenecacheError && err.code === 'lock_lost';
}

/**
 * Write a failure to `download_jobs`. A job that never passed validation may have no row (it
 * was added to the queue without the API): create it from whatever the payload holds first.
 * @returns the row after the write (`undefined`: the job was cancelled meanwhile).
 */
async function recordFailure(deps: WorkerDeps, job: SceneJob, attempt: number, code: string, message: string, final: boolean): Promise<DownloadJobRow | undefined> {
  const data = (job.data ?? {}) as Partial<Record<string, unknown>>;
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : '');
  const updated = await markJobFailed(deps.db, job.id!, { code, message, attempt, final });
  if (updated) return updated;
  await markJobActive(deps.db, {
    id: job.id!,
    tenantId: text(data.tenant_id),
    sceneId: text(data.scene_id),
    bands: Array.isArray(data.bands) ? data.bands.map(text) : [],
    workerId: deps.workerId,
    attempt,
  });
  return markJobFailed(deps.db, job.id!, { code, message, attempt, final });
}

/**
 * End a job whose cancel was requested: row `cancelled` (unless it already is: then it was
 * cancelled before it ran and is announced already), the end announced, and the BullMQ job failed
 * with an `UnrecoverableError` (`cancelled: …`), so it is never retried. Called after the run
 * released what it held. When the row cannot be written the job is handed back instead.
 * @throws UnrecoverableError; DelayedError when handed back.
 */
async function endCancelled(deps: WorkerDeps, job: SceneJob, token: string | undefined, log: Logger): Promise<never> {
  const jobId = job.id!;
  let row: DownloadJobRow | undefined;
  try {
    row = await markJobCancelled(deps.db, jobId, deps.workerId);
  } catch (err) {
    // Not recorded (Postgres unreachable): hand the job back; its next run finds the flag again.
    log.warn({ err }, 'could not record the cancel; job handed back');
    return handBack(deps, job, token, Math.max(deps.settings.jobBackoffMs, 1_000) * (1 + Math.random()), log, { recordInDb: false });
  }
  if (row) {
    log.info({ durationMs: row.duration_ms }, 'job cancelled');
    await deps.jobEnds?.announce(row, log);
  }
  throw new UnrecoverableError(`cancelled: download job ${jobId} was cancelled (DELETE /v1/downloads/${jobId})`);
}
