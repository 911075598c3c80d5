/**
 * The scene download processor: one BullMQ job = one tenant's bands of one product (DESIGN.md,
 * "The pipeline"). In short:
 *
 * 1. validate the payload (bad input fails at once, no retries);
 * 2. ask the global cache (HEAD-verified) which bands it serves;
 * 3. for the missing ones take the scene's advisory lock, re-check under it, take an upstream slot
 *    — and when either is busy, register as a waiter and get out of the way (delayed);
 * 4. stream each missing band from CDSE into the global bucket, verified against the manifest;
 * 5. register the bands in one statement, release slot and lock, wake the waiters;
 * 6. server-side copy every requested band into the tenant bucket;
 * 7. record the result in `download_jobs` and return it.
 */
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Kysely } from 'kysely';
import {
  downloadJobDataSchema,
  failpoint,
  findBandFile,
  sceneStoragePath,
  ScenecacheError,
  toScenecacheError,
  UpstreamError,
  validateDownload,
  ValidationError,
  type Band,
  type DownloadJobData,
  type DownloadJobResult,
  type Logger,
  type Settings,
  type ValidatedDownload,
} from '@scenecache/core';
import {
  findScene,
  isConnectionError,
  markBandsInvalid,
  markJobActive,
  markJobCompleted,
  markJobFailed,
  markJobRequeued,
  recordCacheHit,
  recordJobWait,
  registerBands,
  upsertTenantScene,
  type AdvisoryLocks,
  type CachedBand,
  type DB,
  type SceneLease,
} from '@scenecache/db';
import type { CdseClient } from '@scenecache/copernicus';
import type { ObjectStore } from '@scenecache/storage';
import { transferBand } from './band-transfer.js';
import { checkCachedBands, type CacheCheck } from './cached-bands.js';
import type { SceneWaiters, WaitTarget } from './scene-waiters.js';
import { copyToTenant } from './tenant-copy.js';
import type { WorkerMetrics } from './worker-metrics.js';

/** Everything the processor needs; built once per worker process. */
export interface WorkerDeps {
  settings: Settings;
  db: Kysely<DB>;
  locks: AdvisoryLocks;
  store: ObjectStore;
  cdse: CdseClient;
  waiters: SceneWaiters;
  logger: Logger;
  /** Identifies this process in `download_jobs.worker_id` (host:pid). */
  workerId: string;
  /** Prometheus metrics the processor records into; none recorded when absent. */
  metrics?: WorkerMetrics;
}

type SceneJob = Job<DownloadJobData, DownloadJobResult>;

/** Whether a job run took an upstream slot, or went to wait for one. */
interface SlotUse {
  used: boolean;
  waiting: boolean;
}

/** Bands fetched (or adopted) from upstream by this job. */
interface Fetched {
  bands: Map<string, CachedBand>;
  bytes: number;
}

/** Build the BullMQ processor function `(job, token, signal) → result`. */
export function createSceneDownloadProcessor(deps: WorkerDeps) {
  const { settings, db, logger } = deps;

  return async function processSceneDownload(job: SceneJob, token?: string, signal?: AbortSignal): Promise<DownloadJobResult> {
    const jobId = job.id!;
    const log = logger.child({ jobId, tenantId: job.data?.tenant_id, sceneId: job.data?.scene_id });
    const attempt = job.attemptsMade + 1;
    // Woken for a freed upstream slot? Then the slot must not idle if this job does not take it.
    const baton = await deps.waiters.takeSlotBaton(jobId);
    const slot: SlotUse = { used: false, waiting: false };
    try {
      const request = parseJob(job, settings.tenantBucketPrefix);
      const activeRow = await markJobActive(db, {
        id: jobId,
        tenantId: request.tenantId,
        sceneId: request.product.sceneId,
        bands: request.bands.map((b) => b.id),
        workerId: deps.workerId,
        attempt,
      });
      const startedAt = activeRow.started_at ?? new Date();
      const result = await runPipeline(deps, job, token, signal ?? new AbortController().signal, request, log, startedAt, slot);
      await markJobCompleted(db, jobId, result, deps.workerId);
      deps.metrics?.jobCompleted(result);
      log.info({ cacheStatus: result.cache_status, bandsDownloaded: result.bands_downloaded, bandsReused: result.bands_reused, durationMs: result.duration_ms }, 'job completed');
      return result;
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      if (signal?.aborted) {
        // Cancelled (shutdown, or our job lock was lost): hand the job back without spending an
        // attempt. With a lost lock the move fails and the stalled check hands it back instead.
        log.warn({ reason: String(signal.reason) }, 'job cancelled; handing it back');
        return handBack(deps, job, token, 0, log, { recordInDb: true });
      }
      if (isDependencyUnavailable(err)) {
        // Postgres (or another service of ours) is unreachable: not the job's fault. Come back
        // later without spending an attempt, however long the outage lasts — retries would burn
        // every attempt within seconds and fail the job where the failure cannot even be recorded.
        const delayMs = Math.max(settings.jobBackoffMs, 1_000) * (1 + Math.random());
        log.warn({ err, delayMs: Math.round(delayMs) }, 'a dependency is unavailable; job delayed');
        return handBack(deps, job, token, delayMs, log, { recordInDb: false });
      }
      const e = toScenecacheError(err);
      if (e.code === 'upstream_rate_limited') {
        // A 429 is a rate limit, not a failure: come back later without spending an attempt.
        const retryAfterMs = (e instanceof UpstreamError ? e.retryAfterMs : undefined) ?? 10_000;
        log.warn({ retryAfterMs }, 'upstream rate limited; job delayed');
        return handBack(deps, job, token, retryAfterMs + Math.random() * retryAfterMs, log, { recordInDb: true });
      }
      const final = !e.retryable || attempt >= (job.opts.attempts ?? 1);
      log.error({ err: e, code: e.code, attempt, final }, final ? 'job failed' : 'job attempt failed; will retry');
      await recordFailure(deps, job, attempt, e.code, e.message, final).catch((dbErr: unknown) =>
        log.error({ err: dbErr }, 'could not record the failure'),
      );
      if (final) deps.metrics?.jobFailed();
      if (!e.retryable) throw new UnrecoverableError(`${e.code}: ${e.message}`);
      throw e;
    } finally {
      if (baton && !slot.used && !slot.waiting) {
        await deps.waiters.wake({ kind: 'upstream-slot' }, 1).catch((err: unknown) => log.warn({ err }, 'could not pass the slot wake-up on'));
      }
    }
  };
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

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/**
 * Whether `err` is a raw connection failure (Postgres unreachable or its connection dropped, as
 * pg and pg-pool report it), as opposed to a failure of the job. Our own errors
 * ({@link ScenecacheError}: upstream, storage, `lock_lost`, …) keep their retry policy.
 */
function isDependencyUnavailable(err: unknown, depth = 0): boolean {
  if (depth > 4 || typeof err !== 'object' || err === null || err instanceof ScenecacheError) return false;
  if (isConnectionError(err)) return true;
  const { code, message, cause, errors } = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return true;
  if (typeof message === 'string' && /timeout exceeded when trying to connect|Connection terminated/i.test(message)) return true;
  if (Array.isArray(errors) && errors.some((e) => isDependencyUnavailable(e, depth + 1))) return true;
  return isDependencyUnavailable(cause, depth + 1);
}

/**
 * Write a failure to `download_jobs`. A job that never passed validation may have no row (it
 * was added to the queue without the API): create it from whatever the payload holds first.
 */
async function recordFailure(deps: WorkerDeps, job: SceneJob, attempt: number, code: string, message: string, final: boolean): Promise<void> {
  const data = (job.data ?? {}) as Partial<Record<string, unknown>>;
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : '');
  const updated = await markJobFailed(deps.db, job.id!, { code, message, attempt, final });
  if (updated) return;
  await markJobActive(deps.db, {
    id: job.id!,
    tenantId: text(data.tenant_id),
    sceneId: text(data.scene_id),
    bands: Array.isArray(data.bands) ? data.bands.map(text) : [],
    workerId: deps.workerId,
    attempt,
  });
  await markJobFailed(deps.db, job.id!, { code, message, attempt, final });
}

/** Step 1: the payload's shape (zod) and meaning (product name, bands, tenant id). */
function parseJob(job: SceneJob, tenantBucketPrefix: string): ValidatedDownload {
  const parsed = downloadJobDataSchema.safeParse(job.data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || 'data';
    throw new ValidationError('invalid_payload', `job data ${field}: ${issue.message}`, field);
  }
  return validateDownload(parsed.data, tenantBucketPrefix);
}

async function runPipeline(
  deps: WorkerDeps,
  job: SceneJob,
  token: string | undefined,
  jobSignal: AbortSignal,
  request: ValidatedDownload,
  log: Logger,
  startedAt: Date,
  slotUse: SlotUse,
): Promise<DownloadJobResult> {
  const { settings, db, locks, store, waiters } = deps;
  const { product } = request;
  const sceneId = product.sceneId;

  // Step 2: what the cache serves without any lock.
  let check = await readCache(deps, sceneId, request.bands, log);

  let fetched: Fetched & { productId?: string } = { bands: new Map(), bytes: 0 };
  let invalidatedMeanwhile = false;
  if (check.missing.length > 0) {
    // Step 3: become the scene's downloader, or get out of the way.
    const lease = await locks.tryAcquireScene(sceneId);
    if (!lease) return getOutOfTheWay(deps, job, token, { kind: 'scene', sceneId }, () => locks.isSceneFree(sceneId), log);
    try {
      await failpoint(settings.failpoints, 'scene-locked', log);
      // Double-checked: the previous holder may have registered our bands meanwhile.
      check = await readCache(deps, sceneId, request.bands, log);
      if (check.missing.length > 0) {
        const slot = await lease.tryAcquireUpstreamSlot(settings.upstreamConcurrency);
        if (slot === undefined) {
          slotUse.waiting = true;
        } else {
          slotUse.used = true;
          log.info({ slot, bands: check.missing.map((b) => b.id) }, 'downloading from upstream');
          fetched = await downloadBands(deps, job.id!, request, check.missing, lease, jobSignal, log, check.untrustedKeys);
          await failpoint(settings.failpoints, 'bands-stored', log);
          // Step 5: register only while the lock is provably still ours.
          lease.throwIfLost();
          // Registering replaces an invalidated row's bands: remove their untrusted objects first,
          // so no later job adopts one of them as a left-over upload.
          const fresh = new Set([...fetched.bands.values()].map((b) => b.key));
          for (const key of check.untrustedKeys) if (!fresh.has(key)) await store.deleteObject(settings.globalBucket, key);
          const registered = await registerBands(db, {
            sceneId,
            storageBucket: settings.globalBucket,
            storagePath: sceneStoragePath(product),
            sensingDate: product.sensingDate,
            level: product.level,
            tile: product.tile,
            mission: product.mission,
            cdseProductId: fetched.productId ?? null,
            bands: Object.fromEntries(fetched.bands),
          });
          // An invalidation that committed while we downloaded: its bands were just dropped from the
          // row; delete their objects while we still hold the lock, so no job adopts them.
          // (The untrusted keys read before the download were deleted above already.)
          for (const band of Object.values(registered.discarded)) {
            if (!check.untrustedKeys.includes(band.key)) await store.deleteObject(settings.globalBucket, band.key);
          }
          // Bands we meant to serve from the row we read are among them: run again (no attempt
          // spent), and the next run downloads them; what we just fetched is kept and counted.
          invalidatedMeanwhile = request.bands.some((b) => !fetched.bands.has(b.id) && registered.discarded[b.id] !== undefined);
          await failpoint(settings.failpoints, 'bands-registered', log);
        }
      }
    } finally {
      await lease.release();
      // Waiters on this scene either find their bands now or take the lock in turn.
      await waiters.wake({ kind: 'scene', sceneId });
      // One slot was freed: one slot waiter, not all of them (see SceneWaiters.wake).
      if (slotUse.used) await waiters.wake({ kind: 'upstream-slot' }, 1);
    }
    if (invalidatedMeanwhile) {
      log.info('the scene was invalidated during the download: running again for the bands it dropped');
      return handBack(deps, job, token, 0, log, { recordInDb: true });
    }
    if (slotUse.waiting) {
      return getOutOfTheWay(deps, job, token, { kind: 'upstream-slot' }, () => locks.isAnyUpstreamSlotFree(settings.upstreamConcurrency), log);
    }
  }

  // Step 6: fan out every requested band, cached or just fetched.
  const all = new Map<string, CachedBand>();
  for (const band of request.bands) {
    const entry = fetched.bands.get(band.id) ?? check.cached.get(band.id);
    if (!entry) throw new ScenecacheError('internal', `band ${band.id} neither cached nor fetched`, { retryable: true });
    all.set(band.id, entry);
  }
  const copy = await copyToTenant(store, settings.globalBucket, request.tenantBucket, all, () => failpoint(settings.failpoints, 'tenant-copied', log));

  // Step 7: record. A band registered by an earlier attempt of this job (killed before it
  // finished) was downloaded by this job, not reused.
  const byThisJob = (id: string) => fetched.bands.has(id) || check.cached.get(id)?.job_id === job.id;
  const bandsDownloaded = request.bands.filter((b) => byThisJob(b.id)).map((b) => b.id);
  const bandsReused = request.bands.filter((b) => !byThisJob(b.id)).map((b) => b.id);
  const bytesDownloaded = fetched.bytes + bandsDownloaded.reduce((sum, id) => sum + (fetched.bands.has(id) ? 0 : all.get(id)!.size), 0);
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
    duration_ms: Date.now() - startedAt.getTime(),
    message:
      cacheStatus === 'reused'
        ? `served ${bandsReused.length} band(s) from the cache`
        : `downloaded ${bandsDownloaded.length} band(s) from upstream, reused ${bandsReused.length}`,
  };
}

/**
 * Read the scene's cache row and HEAD-check the requested bands; bands whose object is missing
 * or truncated are dropped from the row so they are downloaded again.
 */
async function readCache(deps: WorkerDeps, sceneId: string, bands: readonly Band[], log: Logger): Promise<CacheCheck> {
  const check = await checkCachedBands(deps.store, await findScene(deps.db, sceneId), bands);
  if (check.invalid.length > 0) {
    log.warn({ bands: check.invalid }, 'cached bands missing or truncated in the global bucket; marked invalid');
    await markBandsInvalid(deps.db, sceneId, [...check.invalid]);
  }
  return check;
}

/** Step 4: look the product up, read its manifest, stream each missing band (one at a time). */
async function downloadBands(
  deps: WorkerDeps,
  jobId: string,
  request: ValidatedDownload,
  missing: readonly Band[],
  lease: SceneLease,
  jobSignal: AbortSignal,
  log: Logger,
  untrustedKeys: readonly string[],
): Promise<Fetched & { productId: string }> {
  const { cdse, store, settings } = deps;
  const { product } = request;
  const signal = AbortSignal.any([jobSignal, lease.signal]);
  const upstream = await cdse.lookupProduct(product);
  const files = await cdse.getManifest(upstream.Id, product.safeName);
  const bands = new Map<string, CachedBand>();
  let bytes = 0;
  for (const band of missing) {
    const file = findBandFile(files, band);
    if (!file) {
      throw new ScenecacheError('band_not_in_product', `${product.sceneId} has no ${band.id} file in its manifest`, { retryable: false, httpStatus: 404 });
    }
    const key = `${sceneStoragePath(product)}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
    const bandLog = log.child({ band: band.id, bytes: file.size });
    const t0 = Date.now();
    const adoptExisting = !untrustedKeys.includes(key);
    const { etag, adopted, bytesDownloaded } = await transferBand({ cdse, store, productId: upstream.Id, safeName: product.safeName, file, bucket: settings.globalBucket, key, signal, logger: bandLog, adoptExisting });
    if (!adopted) deps.metrics?.upstreamFile(bytesDownloaded);
    bandLog.info({ ms: Date.now() - t0 }, 'band stored in the global bucket');
    bands.set(band.id, { key, size: file.size, sha3_256: file.sha3_256, etag, safe_path: file.path, registered_at: new Date().toISOString(), job_id: jobId });
    bytes += file.size;
  }
  return { bands, bytes, productId: upstream.Id };
}

/**
 * Get out of the way: delay the job (freeing the worker slot; no connection is held), register
 * as a waiter, then re-check — if what we wait for was released between our failed try and our
 * registration, nobody will wake us, so we wake ourselves. Delayed *before* registering: a waker
 * takes a registration for good, and a promote of a job that is not delayed yet fails, so a
 * registration taken before the delay would be a lost wake-up (the job would sleep until the
 * fallback delay while the re-check found the resource held by the next job).
 */
async function getOutOfTheWay(
  deps: WorkerDeps,
  job: SceneJob,
  token: string | undefined,
  target: WaitTarget,
  isFreeNow: () => Promise<boolean>,
  log: Logger,
): Promise<never> {
  const jobId = job.id!;
  await recordJobWait(deps.db, jobId);
  await job.moveToDelayed(Date.now() + deps.settings.waiterFallbackDelayMs, token);
  await deps.waiters.register(target, jobId);
  deps.metrics?.lockWait(target.kind);
  if (await isFreeNow()) await deps.waiters.promote(jobId);
  log.debug({ waitingFor: target.kind }, 'waiting for another job; delayed');
  throw new DelayedError();
}
