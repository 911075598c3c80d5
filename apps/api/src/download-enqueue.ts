/**
 * Enqueueing download jobs: validate the request's meaning, insert the `download_jobs` row, then add
 * the BullMQ job under the row's id. The row comes first so a job never runs without one; when the
 * add fails the row is deleted again and the client gets 503 `service_unavailable` (nothing was
 * enqueued, retrying is safe). BullMQ ignores an add whose job id exists, so re-adding is harmless.
 *
 * A `callback_url` is checked here (scheme and host rules: `checkCallbackUrl` of core) and stored
 * with the key whose callback secret will sign it; a key without a secret (or, for `ADMIN_API_KEY`
 * and open mode, no `CALLBACK_SIGNING_SECRET`) cannot ask for a callback (400
 * `callback_secret_missing`): the callback could not be signed.
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Kysely } from 'kysely';
import {
  checkCallbackUrl,
  DOWNLOAD_JOB_OPTIONS,
  SCENE_DOWNLOAD_QUEUE,
  ScenecacheError,
  ValidationError,
  validateDownload,
  type DownloadJobData,
  type DownloadJobResult,
  type DownloadRequest,
  type Logger,
} from '@scenecache/core';
import {
  deleteJob,
  deleteJobs,
  hasCallbackSecret,
  insertQueuedJob,
  insertQueuedJobs,
  newJobId,
  type DB,
  type DownloadJobRow,
  type NewQueuedJob,
} from '@scenecache/db';
import { callDependency, serviceUnavailable } from './dependency-call.js';

/** The scene download queue as the API sees it. */
export type DownloadQueue = Queue<DownloadJobData, DownloadJobResult>;

/** Deadlines of dependency calls (ms). */
export interface DependencyTimeouts {
  /** Per Postgres call. @defaultValue 3000 */
  readonly postgresMs: number;
  /** Per Redis call (waiting for the connection, adding jobs). @defaultValue 2000 */
  readonly redisMs: number;
}

/** The logging the service does; a request's logger (bound to its request id) fits. */
export type EnqueueLogger = Pick<Logger, 'info' | 'warn' | 'error'>;

/** What {@link DownloadEnqueueService} needs. */
export interface DownloadEnqueueDeps {
  readonly db: Kysely<DB>;
  readonly queue: DownloadQueue;
  /** `TENANT_BUCKET_PREFIX`: a tenant id must make a valid bucket name behind it. */
  readonly tenantBucketPrefix: string;
  readonly timeouts: DependencyTimeouts;
  /** Used when a call passes no logger of its own. */
  readonly logger: EnqueueLogger;
  /** BullMQ options of each job (attempts, backoff, retention). @defaultValue DOWNLOAD_JOB_OPTIONS */
  readonly jobOptions?: JobsOptions | undefined;
  /** `REQUIRE_IDEMPOTENCY_KEY`: refuse a single enqueue without a key (400). @defaultValue false */
  readonly requireIdempotencyKey?: boolean | undefined;
  /** Called with the number of jobs newly added to the queue (e.g. to count them in a metric). */
  readonly onEnqueued?: ((jobs: number) => void) | undefined;
  /** `CALLBACK_ALLOW_HTTP_LOOPBACK`: accept `http://` callback URLs to loopback hosts. @defaultValue false */
  readonly callbackAllowHttpLoopback?: boolean | undefined;
  /** Whether `CALLBACK_SIGNING_SECRET` is set (it signs the callbacks of `ADMIN_API_KEY` and open-mode jobs). @defaultValue false */
  readonly bootstrapCallbackSecret?: boolean | undefined;
}

/**
 * Who enqueues: the API key whose callback secret signs the jobs' completion callbacks —
 * an `api_keys` id, or `null` for `ADMIN_API_KEY` and `AUTH_MODE=open` (signed with
 * `CALLBACK_SIGNING_SECRET`).
 */
export interface EnqueueCaller {
  readonly keyId: string | null;
}

/** The caller of a job added without a key of `api_keys` (`ADMIN_API_KEY`, open mode, tests). */
export const BOOTSTRAP_CALLER: EnqueueCaller = Object.freeze({ keyId: null });

/** Outcome of {@link DownloadEnqueueService.enqueue}. */
export interface EnqueueOutcome {
  row: DownloadJobRow;
  /** `false`: the Idempotency-Key was used before and `row` is that earlier job. */
  created: boolean;
}

/** A request that passed every check, in the shape of a row to insert. */
type CheckedRequest = Omit<NewQueuedJob, 'id' | 'idempotencyKey' | 'callbackKeyId'>;

/**
 * Check a request's meaning (tenant id, product name, bands for its level) and canonicalise it:
 * bands become canonical ids, `.SAFE` is dropped from the scene id.
 *
 * @param fieldPrefix - for batch items, e.g. `jobs[3]`: errors then name `jobs[3].bands[0]`.
 * @throws ValidationError naming the field at fault.
 */
function checkRequest(request: DownloadRequest, tenantBucketPrefix: string, allowHttpLoopback: boolean, fieldPrefix?: string): CheckedRequest {
  try {
    const valid = validateDownload(request, tenantBucketPrefix);
    return {
      tenantId: valid.tenantId,
      sceneId: valid.product.sceneId,
      bands: valid.bands.map((band) => band.id),
      priority: request.priority,
      callbackUrl: request.callback_url === undefined ? undefined : checkCallbackUrl(request.callback_url, { allowHttpLoopback }),
    };
  } catch (err) {
    if (fieldPrefix === undefined || !(err instanceof ValidationError)) throw err;
    const field = err.field === undefined ? fieldPrefix : `${fieldPrefix}.${err.field}`;
    const message = err.field !== undefined && err.message.startsWith(err.field) ? `${fieldPrefix}.${err.message}` : `${fieldPrefix}: ${err.message}`;
    throw new ValidationError(err.code, message, field);
  }
}

/** BullMQ's add arguments for a job row: the row id is the job id. */
function queueEntry(row: DownloadJobRow, jobOptions: JobsOptions) {
  const data: DownloadJobData = {
    tenant_id: row.tenant_id,
    scene_id: row.scene_id,
    bands: row.bands_requested,
    enqueued_at: row.enqueued_at.toISOString(),
  };
  return {
    name: SCENE_DOWNLOAD_QUEUE,
    data,
    opts: { ...jobOptions, jobId: row.id, ...(row.priority === null ? {} : { priority: row.priority }) },
  };
}

function sameRequest(row: DownloadJobRow, request: CheckedRequest): boolean {
  return (
    row.scene_id === request.sceneId &&
    (row.priority ?? undefined) === request.priority &&
    row.bands_requested.length === request.bands.length &&
    row.bands_requested.every((band, i) => band === request.bands[i]) &&
    (row.callback_url ?? undefined) === request.callbackUrl
  );
}

/** Enqueues download jobs: one, or a batch that is validated as a whole before anything is written. */
export class DownloadEnqueueService {
  constructor(private readonly deps: DownloadEnqueueDeps) {}

  /**
   * Enqueue one job.
   *
   * @param idempotencyKey - the request's `Idempotency-Key`: a repeat for the same tenant returns the
   *   first job (`created: false`) and enqueues nothing new.
   * @param log - e.g. the request's logger. @defaultValue the service's
   * @param caller - whose callback secret signs the job's callback. @defaultValue {@link BOOTSTRAP_CALLER}
   * @throws ValidationError (400) for bad input (`invalid_callback_url`, `callback_secret_missing`
   *   among them); ScenecacheError `conflict` (409) when the key was used for a different request;
   *   `service_unavailable` (503) when Postgres or Redis fails.
   */
  async enqueue(request: DownloadRequest, idempotencyKey?: string, log: EnqueueLogger = this.deps.logger, caller: EnqueueCaller = BOOTSTRAP_CALLER): Promise<EnqueueOutcome> {
    const checked = checkRequest(request, this.deps.tenantBucketPrefix, this.deps.callbackAllowHttpLoopback ?? false);
    if (this.deps.requireIdempotencyKey && idempotencyKey === undefined) {
      throw new ValidationError('idempotency_key_required', 'Idempotency-Key header is required (REQUIRE_IDEMPOTENCY_KEY is on)', 'Idempotency-Key');
    }
    if (checked.callbackUrl !== undefined) await this.requireCallbackSecret(caller, 'callback_url');
    const { row, created } = await this.postgres(() =>
      insertQueuedJob(this.deps.db, { ...checked, id: newJobId(), idempotencyKey, callbackKeyId: caller.keyId }),
    );
    if (!created) {
      if (!sameRequest(row, checked)) {
        throw new ScenecacheError(
          'conflict',
          `Idempotency-Key was already used by job ${row.id} for a different request (scene ${row.scene_id}, bands ${row.bands_requested.join(',')})`,
          { httpStatus: 409, field: 'Idempotency-Key' },
        );
      }
      // A process that died between its insert and its add left a queued row without a job:
      // adding again heals that, and is a no-op when the job exists.
      if (row.status === 'queued') await this.addToQueue([row]);
      return { row, created: false };
    }
    try {
      await this.addToQueue([row]);
    } catch (err) {
      await this.undoInsert([row.id], err, log);
    }
    log.info({ jobId: row.id, tenantId: row.tenant_id, sceneId: row.scene_id, bands: row.bands_requested }, 'download job enqueued');
    this.deps.onEnqueued?.(1);
    return { row, created: true };
  }

  /**
   * Enqueue several jobs, all or none: every item is checked first (the first bad one is reported
   * as `jobs[i].<field>`), then the rows are inserted in one statement and the jobs added in one
   * atomic `addBulk`.
   *
   * @param log - e.g. the request's logger. @defaultValue the service's
   * @param caller - whose callback secret signs the jobs' callbacks. @defaultValue {@link BOOTSTRAP_CALLER}
   * @returns the rows, in request order.
   * @throws as {@link enqueue} (no `conflict`: batch items carry no idempotency key).
   */
  async enqueueBatch(requests: readonly DownloadRequest[], log: EnqueueLogger = this.deps.logger, caller: EnqueueCaller = BOOTSTRAP_CALLER): Promise<DownloadJobRow[]> {
    const allowHttp = this.deps.callbackAllowHttpLoopback ?? false;
    const checked = requests.map((request, i) => checkRequest(request, this.deps.tenantBucketPrefix, allowHttp, `jobs[${i}]`));
    const firstCallback = checked.findIndex((c) => c.callbackUrl !== undefined);
    if (firstCallback >= 0) await this.requireCallbackSecret(caller, `jobs[${firstCallback}].callback_url`);
    const rows = await this.postgres(() => insertQueuedJobs(this.deps.db, checked.map((c) => ({ ...c, id: newJobId(), callbackKeyId: caller.keyId }))));
    try {
      await this.addToQueue(rows);
    } catch (err) {
      await this.undoInsert(rows.map((row) => row.id), err, log);
    }
    log.info({ jobIds: rows.map((row) => row.id), count: rows.length }, 'download jobs enqueued');
    this.deps.onEnqueued?.(rows.length);
    return rows;
  }

  /**
   * A callback must be signed: the caller's key needs a callback secret (`ADMIN_API_KEY` and open
   * mode: `CALLBACK_SIGNING_SECRET`).
   * @throws ValidationError `callback_secret_missing` (400) naming `field`; `service_unavailable` (503).
   */
  private async requireCallbackSecret(caller: EnqueueCaller, field: string): Promise<void> {
    const { keyId } = caller;
    if (keyId === null) {
      if (this.deps.bootstrapCallbackSecret) return;
      throw new ValidationError('callback_secret_missing', `${field}: callbacks are signed, and CALLBACK_SIGNING_SECRET (which signs those of ADMIN_API_KEY and open mode) is not set; use a key made by npm run keys, or set it`, field);
    }
    if (await this.postgres(() => hasCallbackSecret(this.deps.db, keyId))) return;
    throw new ValidationError('callback_secret_missing', `${field}: this API key has no callback signing secret (it predates callbacks): npm run keys -- rotate-callback-secret <key id>`, field);
  }

  /** Add jobs for rows to the queue; every failure is `service_unavailable`. */
  private async addToQueue(rows: readonly DownloadJobRow[]): Promise<void> {
    const { queue, timeouts } = this.deps;
    // Wait for the connection first, under the deadline: an add issued while Redis is unreachable
    // would wait for it and might land long after we answered 503 and deleted the row.
    await callDependency('Redis', timeouts.redisMs, () => queue.waitUntilReady(), { anyFailure: true });
    const jobOptions = this.deps.jobOptions ?? DOWNLOAD_JOB_OPTIONS;
    const entries = rows.map((row) => queueEntry(row, jobOptions));
    await callDependency(
      'Redis',
      timeouts.redisMs,
      async () => {
        if (entries.length === 1) await queue.add(entries[0]!.name, entries[0]!.data, entries[0]!.opts);
        else await queue.addBulk(entries);
      },
      { anyFailure: true },
    );
  }

  /** The add failed: delete the rows so no queued row without a job remains, then answer 503. */
  private async undoInsert(ids: readonly string[], cause: unknown, logger: EnqueueLogger): Promise<never> {
    const { db } = this.deps;
    try {
      await this.postgres<unknown>(() => (ids.length === 1 ? deleteJob(db, ids[0]!) : deleteJobs(db, ids)));
    } catch (deleteErr) {
      // The rows stay `queued` without a job; an Idempotency-Key retry re-adds it.
      logger.error({ err: deleteErr, jobIds: ids }, 'could not delete job rows after a failed enqueue');
    }
    logger.warn({ err: cause, jobIds: ids }, 'enqueue failed; job rows deleted');
    if (cause instanceof ScenecacheError && cause.code === 'service_unavailable') throw cause;
    throw serviceUnavailable(`could not enqueue: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
  }

  private postgres<T>(call: () => Promise<T>): Promise<T> {
    return callDependency('Postgres', this.deps.timeouts.postgresMs, call);
  }
}
