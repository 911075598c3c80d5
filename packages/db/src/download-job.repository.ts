/**
 * `download_jobs`: one row per download job (id = the BullMQ job id), the source of truth for
 * dashboards and the API. The API inserts a row before it enqueues the job (and deletes it again
 * when the enqueue fails); the worker moves it through `queued → active → completed | failed`.
 * A cancel (`DELETE /v1/downloads/{id}`) ends a queued job as `cancelled` at once (the API) or flags
 * an active one (`cancel_requested_at`), which the worker ends as `cancelled` at its next step.
 * Finished rows (completed, failed, cancelled) are not moved back by a late writer, except that a
 * completed or failed job BullMQ runs again (after a stall) becomes active again.
 *
 * A job with a `callback_url` gets its completion callback once: whoever finalizes the row claims
 * the delivery ({@link claimCallbackDelivery}: state null → `pending`) and the workers record each
 * attempt ({@link recordCallbackAttempt}).
 *
 * Timestamps are `timestamptz` (microseconds in Postgres, milliseconds once read into a JS `Date`):
 * list cursors therefore carry the database's own microsecond text, never a JS `Date`, so rows
 * whose times differ by less than a millisecond are neither skipped nor repeated across pages.
 */
import { sql } from 'kysely';
import { ValidationError, type DownloadJobResult } from '@scenecache/core';
import type { Queryable } from './database.js';
import { decodePageCursor, encodePageCursor, invalidCursor } from './page-cursor.js';
import type { CacheStatusColumn, DownloadJobRow, JobStatusColumn, NewDownloadJobRow } from './schema.js';

/**
 * What a job id may look like: 1–100 of `A–Z a–z 0–9 . _ -`, starting with a letter or digit. The
 * API makes UUIDs; a BullMQ job id may hold no `:`. Ids from clients (path, cursor) are checked
 * against it before any query, so no control character or NUL reaches Postgres.
 */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Input of {@link insertQueuedJob}. */
export interface NewQueuedJob {
  /** Job id, also used as the BullMQ job id (no `:`, not an integer). */
  id: string;
  tenantId: string;
  /** Product name without `.SAFE`. */
  sceneId: string;
  /** Canonical band ids (`B04`, `B04_20m`). */
  bands: readonly string[];
  /** BullMQ priority (1 = highest); omitted: none. */
  priority?: number | undefined;
  /** Client-chosen key that makes the insert idempotent per tenant. */
  idempotencyKey?: string | undefined;
  /** Where the job's view is POSTed once it ends (checked by the caller: `checkCallbackUrl`). */
  callbackUrl?: string | undefined;
  /** The `api_keys` row whose secret signs the callback; omitted/null: `CALLBACK_SIGNING_SECRET`. */
  callbackKeyId?: string | null | undefined;
}

/** Result of {@link insertQueuedJob}. */
export interface InsertQueuedJobResult {
  /** The new row, or the row that already held the tenant's idempotency key. */
  row: DownloadJobRow;
  /** `false` when the idempotency key was already used and `row` is the earlier job. */
  created: boolean;
}

function toInsertable(job: NewQueuedJob): NewDownloadJobRow {
  return {
    id: job.id,
    tenant_id: job.tenantId,
    scene_id: job.sceneId,
    bands_requested: [...job.bands],
    priority: job.priority ?? null,
    idempotency_key: job.idempotencyKey ?? null,
    callback_url: job.callbackUrl ?? null,
    callback_key_id: job.callbackUrl === undefined ? null : (job.callbackKeyId ?? null),
  };
}

/**
 * Insert a job in status `queued` (`enqueued_at` = now).
 *
 * With an idempotency key, a second insert for the same `(tenant_id, idempotency_key)` inserts
 * nothing and returns the existing row with `created: false`. A concurrent insert with the same key
 * waits for the first to commit (the partial unique index `download_jobs_idempotency_key`).
 *
 * @throws the driver's error when the database fails (e.g. a duplicate `id`).
 */
export async function insertQueuedJob(db: Queryable, job: NewQueuedJob): Promise<InsertQueuedJobResult> {
  if (job.idempotencyKey === undefined) {
    const row = await db.insertInto('download_jobs').values(toInsertable(job)).returningAll().executeTakeFirstOrThrow();
    return { row, created: true };
  }
  // The existing row may be deleted between our conflict and our select (its enqueue failed and
  // was undone): then the key is free again and the next round inserts.
  for (let round = 0; round < 3; round++) {
    const inserted = await db
      .insertInto('download_jobs')
      .values(toInsertable(job))
      .onConflict((oc) => oc.columns(['tenant_id', 'idempotency_key']).where('idempotency_key', 'is not', null).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (inserted) return { row: inserted, created: true };
    const existing = await db
      .selectFrom('download_jobs')
      .selectAll()
      .where('tenant_id', '=', job.tenantId)
      .where('idempotency_key', '=', job.idempotencyKey)
      .executeTakeFirst();
    if (existing) return { row: existing, created: false };
  }
  throw new Error(`idempotency key of tenant ${job.tenantId} kept changing hands; giving up after 3 rounds`);
}

/**
 * Insert several jobs in status `queued` in one statement (all or none), without idempotency keys.
 *
 * @returns the rows in input order.
 */
export async function insertQueuedJobs(db: Queryable, jobs: readonly NewQueuedJob[]): Promise<DownloadJobRow[]> {
  if (jobs.length === 0) return [];
  const rows = await db
    .insertInto('download_jobs')
    .values(jobs.map((job) => toInsertable({ ...job, idempotencyKey: undefined })))
    .returningAll()
    .execute();
  const byId = new Map(rows.map((row) => [row.id, row]));
  return jobs.map((job) => byId.get(job.id)!);
}

/**
 * Delete a job row (to undo an insert whose enqueue failed).
 *
 * @returns whether a row was deleted.
 */
export async function deleteJob(db: Queryable, id: string): Promise<boolean> {
  const result = await db.deleteFrom('download_jobs').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Delete several job rows (to undo a batch insert whose enqueue failed).
 *
 * @returns how many rows were deleted.
 */
export async function deleteJobs(db: Queryable, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const result = await db.deleteFrom('download_jobs').where('id', 'in', [...ids]).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The job's row, or `undefined` when there is none. */
export async function findJobById(db: Queryable, id: string): Promise<DownloadJobRow | undefined> {
  return db.selectFrom('download_jobs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Most rows one {@link listJobs} page returns. */
export const MAX_LIST_LIMIT = 500;
/** Rows per {@link listJobs} page when no limit is given. */
export const DEFAULT_LIST_LIMIT = 50;

/** Filters and page of {@link listJobs}; every filter is optional and they combine with AND. */
export interface ListJobsQuery {
  tenantId?: string | undefined;
  status?: JobStatusColumn | undefined;
  cacheStatus?: CacheStatusColumn | undefined;
  /** Product name without `.SAFE`. */
  sceneId?: string | undefined;
  /** Jobs enqueued at or after this instant. */
  since?: Date | undefined;
  /** Jobs enqueued before this instant. */
  until?: Date | undefined;
  /** Rows per page, 1…{@link MAX_LIST_LIMIT}. @defaultValue {@link DEFAULT_LIST_LIMIT} */
  limit?: number | undefined;
  /** `nextCursor` of the previous page; omitted: the first page. */
  cursor?: string | undefined;
}

/** One page of {@link listJobs}. */
export interface JobPage {
  /** Newest first: by `enqueued_at` descending, then `id` descending. */
  items: DownloadJobRow[];
  /** Cursor of the next page; `null` on the last page. */
  nextCursor: string | null;
}

/** A keyset position: `enqueued_at` as Postgres wrote it (UTC, microseconds) and the id. */
interface CursorPosition {
  enqueuedAt: string;
  id: string;
}

const CURSOR_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** Encode a keyset position as an opaque cursor. */
function encodeCursor(position: CursorPosition): string {
  return encodePageCursor([position.enqueuedAt, position.id]);
}

/**
 * Decode a cursor made by {@link encodeCursor}.
 *
 * @throws ValidationError `invalid_payload` (field `cursor`) for anything else.
 */
function decodeCursor(cursor: string): CursorPosition {
  const [enqueuedAt, id] = decodePageCursor(cursor, 2);
  if (typeof enqueuedAt !== 'string' || !CURSOR_TIME_RE.test(enqueuedAt)) throw invalidCursor();
  // Round-trip, so 2026-02-30 (which Date.parse rolls over to March) never reaches Postgres.
  const ms = Date.parse(enqueuedAt);
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 23) !== enqueuedAt.slice(0, 23)) throw invalidCursor();
  if (typeof id !== 'string' || !JOB_ID_PATTERN.test(id)) throw invalidCursor();
  return { enqueuedAt, id };
}

/**
 * One page of jobs, newest first, with keyset pagination: the cursor holds the last row's
 * `(enqueued_at, id)`, so pages stay stable while new jobs arrive and rows with equal timestamps
 * are ordered by id.
 *
 * @throws ValidationError `invalid_payload` with field `cursor` (a cursor this function did not
 *   make) or `limit` (outside 1…{@link MAX_LIST_LIMIT}).
 */
export async function listJobs(db: Queryable, query: ListJobsQuery = {}): Promise<JobPage> {
  const limit = query.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new ValidationError('invalid_payload', `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`, 'limit');
  }
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);

  let select = db
    .selectFrom('download_jobs')
    .selectAll()
    // The exact stored time for the cursor: a JS Date would drop the microseconds.
    .select(sql<string>`to_char(enqueued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('cursor_enqueued_at'));
  if (query.tenantId !== undefined) select = select.where('tenant_id', '=', query.tenantId);
  if (query.status !== undefined) select = select.where('status', '=', query.status);
  if (query.cacheStatus !== undefined) select = select.where('cache_status', '=', query.cacheStatus);
  if (query.sceneId !== undefined) select = select.where('scene_id', '=', query.sceneId);
  if (query.since !== undefined) select = select.where('enqueued_at', '>=', query.since);
  if (query.until !== undefined) select = select.where('enqueued_at', '<', query.until);
  if (after !== undefined) {
    select = select.where(sql<boolean>`(enqueued_at, id) < (${after.enqueuedAt}::timestamptz, ${after.id})`);
  }
  // One row more than asked tells whether there is a next page.
  const rows = await select.orderBy('enqueued_at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute();

  const page = rows.slice(0, limit);
  const last = page.at(-1);
  const nextCursor = rows.length > limit && last ? encodeCursor({ enqueuedAt: last.cursor_enqueued_at, id: last.id }) : null;
  const items = page.map(({ cursor_enqueued_at: _cursor, ...row }) => row);
  return { items, nextCursor };
}

/** Input of {@link markJobActive}: enough to create the row when the job has none. */
export interface MarkJobActiveInput {
  id: string;
  tenantId: string;
  /** Product name without `.SAFE`. */
  sceneId: string;
  /** Canonical band ids. */
  bands: readonly string[];
  workerId: string;
  /** BullMQ's `attemptsMade + 1`: 1 on the first try. */
  attempt: number;
}

/**
 * A worker picked the job up: status `active`, `attempts` = `attempt`, `worker_id`, and
 * `started_at` on the first try only (so `duration_ms` spans every attempt).
 *
 * Upserts: a job enqueued straight into BullMQ (not through the API) gets its row here. A
 * `cancelled` row is left as it is (and returned): the job must not run.
 *
 * @returns the row after the write (or the cancelled row).
 */
export async function markJobActive(db: Queryable, input: MarkJobActiveInput): Promise<DownloadJobRow> {
  const row = await db
    .insertInto('download_jobs')
    .values({
      id: input.id,
      tenant_id: input.tenantId,
      scene_id: input.sceneId,
      bands_requested: [...input.bands],
      status: 'active',
      attempts: input.attempt,
      worker_id: input.workerId,
      started_at: sql<Date>`now()`,
    })
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        status: 'active',
        started_at: sql<Date>`COALESCE(download_jobs.started_at, now())`,
        attempts: (eb) => eb.ref('excluded.attempts'),
        worker_id: (eb) => eb.ref('excluded.worker_id'),
        waiting_for: null,
        updated_at: sql<Date>`now()`,
      }).where('download_jobs.status', '<>', 'cancelled'),
    )
    .returningAll()
    .executeTakeFirst();
  return row ?? (await db.selectFrom('download_jobs').selectAll().where('id', '=', input.id).executeTakeFirstOrThrow());
}

/**
 * The job got out of the way (delayed) to wait for another job's download, an upstream slot or
 * the transfer budget: `waits` + 1, `waiting_for` = what it waits for, and status back to
 * `queued` — it holds no worker slot while it waits.
 *
 * @param waitingFor - e.g. `band_download`, `upstream_slot`, `upstream_budget`.
 * @returns whether the row exists.
 */
export async function recordJobWait(db: Queryable, id: string, waitingFor: string): Promise<boolean> {
  const result = await db
    .updateTable('download_jobs')
    .set((eb) => ({ waits: eb('waits', '+', 1), status: 'queued' as const, waiting_for: waitingFor, updated_at: sql<Date>`now()` }))
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * The job was handed back to the queue without spending an attempt (cancelled at shutdown, rate
 * limited upstream, a dependency unreachable): status `active` → `queued`, so dashboards do not
 * show it running on a worker that let it go. Other statuses are left alone.
 *
 * @returns whether a row changed.
 */
export async function markJobRequeued(db: Queryable, id: string): Promise<boolean> {
  const result = await db
    .updateTable('download_jobs')
    .set({ status: 'queued', updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('status', '=', 'active')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * The job succeeded: status `completed` with the result's figures, `finished_at` = now,
 * `duration_ms` = `result.duration_ms`; a previous attempt's error is cleared.
 *
 * @returns the row after the write; `undefined` when the job has no row (or was cancelled).
 */
export async function markJobCompleted(
  db: Queryable,
  id: string,
  result: DownloadJobResult,
  workerId: string,
): Promise<DownloadJobRow | undefined> {
  return db
    .updateTable('download_jobs')
    .set({
      status: 'completed',
      cache_status: result.cache_status,
      bands_downloaded: result.bands_downloaded,
      bands_reused: result.bands_reused,
      bytes_downloaded: result.bytes_downloaded,
      bytes_copied: result.bytes_copied,
      objects: JSON.stringify(result.objects),
      message: result.message,
      finished_at: sql<Date>`now()`,
      duration_ms: Math.round(result.duration_ms),
      worker_id: workerId,
      error_code: null,
      error_message: null,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('status', '<>', 'cancelled')
    .returningAll()
    .executeTakeFirst();
}

/** Input of {@link markJobFailed}. */
export interface MarkJobFailedInput {
  /** Error code (`ErrorCode` of core, or `internal`). */
  code: string;
  message: string;
  /** BullMQ's `attemptsMade + 1` of the attempt that failed. */
  attempt: number;
  /** `true` when BullMQ will not retry (attempts exhausted or a permanent error). */
  final: boolean;
}

/**
 * An attempt failed. Final: status `failed`, `finished_at` = now, `duration_ms` since `started_at`
 * (`null` when the job never started). Not final: status back to `queued` (BullMQ retries it
 * after its backoff), the error kept as the last one seen.
 *
 * @returns the row after the write; `undefined` when the job has no row (or was cancelled).
 */
export async function markJobFailed(db: Queryable, id: string, input: MarkJobFailedInput): Promise<DownloadJobRow | undefined> {
  const common = {
    error_code: input.code,
    error_message: input.message,
    attempts: input.attempt,
    updated_at: sql<Date>`now()`,
  };
  const update = input.final
    ? {
        ...common,
        status: 'failed' as const,
        finished_at: sql<Date>`now()`,
        duration_ms: sql<number | null>`CASE WHEN started_at IS NULL THEN NULL ELSE round(extract(epoch FROM now() - started_at) * 1000)::integer END`,
      }
    : { ...common, status: 'queued' as const };
  return db.updateTable('download_jobs').set(update).where('id', '=', id).where('status', '<>', 'cancelled').returningAll().executeTakeFirst();
}

/**
 * BullMQ failed the job on its own, without a processor to record it: it stalled more often than
 * `maxStalledCount` allows (the workers running it kept dying or losing their lock). Status
 * `failed`, code `worker_lost`; a row already completed or failed is left alone.
 *
 * @returns the row after the write; `undefined` when there is no unfinished row with that id.
 */
export async function markJobLost(db: Queryable, id: string, message: string): Promise<DownloadJobRow | undefined> {
  return db
    .updateTable('download_jobs')
    .set({
      status: 'failed',
      error_code: 'worker_lost',
      error_message: message,
      finished_at: sql<Date>`now()`,
      duration_ms: sql<number | null>`CASE WHEN started_at IS NULL THEN NULL ELSE round(extract(epoch FROM now() - started_at) * 1000)::integer END`,
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'active'])
    .returningAll()
    .executeTakeFirst();
}

/** `duration_ms` of a job ending now: since `started_at`, null when it never started. */
const durationSinceStart = sql<number | null>`CASE WHEN started_at IS NULL THEN NULL ELSE round(extract(epoch FROM now() - started_at) * 1000)::integer END`;

/**
 * Ask for a job's cancel: `cancel_requested_at` = now (kept when already set), if the job is
 * `queued` or `active`. The caller then removes a queued job from BullMQ and ends it with
 * {@link markJobCancelled}; an active job's worker sees the flag at its next step.
 *
 * @returns the row after the write; `undefined` when the job has no row or is no longer queued
 *   or active (it ended meanwhile: read it again).
 */
export async function requestJobCancel(db: Queryable, id: string): Promise<DownloadJobRow | undefined> {
  return db
    .updateTable('download_jobs')
    .set({ cancel_requested_at: sql<Date>`COALESCE(cancel_requested_at, now())`, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'active'])
    .returningAll()
    .executeTakeFirst();
}

/**
 * End a job as `cancelled`: `cancelled_at` = `finished_at` = now, `duration_ms` since it started,
 * `waiting_for` cleared — if it is still `queued` or `active`.
 *
 * @param workerId - the worker that stopped it (an active job); omitted for a queued job the API
 *   removed from the queue.
 * @returns the row after the write; `undefined` when it was not queued or active (it ended).
 */
export async function markJobCancelled(db: Queryable, id: string, workerId?: string): Promise<DownloadJobRow | undefined> {
  return db
    .updateTable('download_jobs')
    .set({
      status: 'cancelled',
      cancel_requested_at: sql<Date>`COALESCE(cancel_requested_at, now())`,
      cancelled_at: sql<Date>`now()`,
      finished_at: sql<Date>`now()`,
      duration_ms: durationSinceStart,
      waiting_for: null,
      ...(workerId === undefined ? {} : { worker_id: workerId }),
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('status', 'in', ['queued', 'active'])
    .returningAll()
    .executeTakeFirst();
}

/** Whether a cancel was asked for the job (its worker checks between steps). `false` when it has no row. */
export async function isJobCancelRequested(db: Queryable, id: string): Promise<boolean> {
  const row = await db.selectFrom('download_jobs').select(['cancel_requested_at', 'status']).where('id', '=', id).executeTakeFirst();
  return row !== undefined && (row.cancel_requested_at !== null || row.status === 'cancelled');
}

/**
 * Claim the job's completion callback for delivery: `callback_state` null → `pending`, if the job
 * has a `callback_url` and has ended. Whoever finalized the row calls it; exactly one caller ever
 * gets the row back (however often a job's end is announced), and enqueues the delivery.
 *
 * @returns the row after the write; `undefined` when there is nothing to deliver (no callback, not
 *   ended, or claimed before).
 */
export async function claimCallbackDelivery(db: Queryable, id: string): Promise<DownloadJobRow | undefined> {
  return db
    .updateTable('download_jobs')
    .set({ callback_state: 'pending', updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('callback_url', 'is not', null)
    .where('callback_state', 'is', null)
    .where('status', 'in', ['completed', 'failed', 'cancelled'])
    .returningAll()
    .executeTakeFirst();
}

/** Input of {@link recordCallbackAttempt}. */
export interface CallbackAttemptInput {
  /** 1 for the first attempt. */
  attempt: number;
  /** `delivered` (a 2xx), `failed` (given up), `pending` (it will be retried). */
  state: 'pending' | 'delivered' | 'failed';
  /** HTTP status the receiver answered; null when none (timeout, refused, an error before sending). */
  httpStatus: number | null;
  /** Why it failed; null when delivered. */
  error: string | null;
}

/**
 * Record one delivery attempt of the job's callback (`callback_attempts`, `callback_last_status`,
 * `callback_last_error`, the state; `callback_delivered_at` when delivered). Only a `pending`
 * delivery changes: a delivered or failed one stays as it ended.
 *
 * @returns whether the row changed.
 */
export async function recordCallbackAttempt(db: Queryable, id: string, input: CallbackAttemptInput): Promise<boolean> {
  const result = await db
    .updateTable('download_jobs')
    .set({
      callback_state: input.state,
      callback_attempts: sql<number>`GREATEST(callback_attempts, ${input.attempt})`,
      callback_last_status: input.httpStatus,
      callback_last_error: input.error,
      ...(input.state === 'delivered' ? { callback_delivered_at: sql<Date>`now()` } : {}),
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('callback_state', '=', 'pending')
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/**
 * Jobs whose callback is `pending` and that ended in [`finishedAfter`, `finishedBefore`), oldest
 * first, at most `limit` (the partial index `download_jobs_callback_pending_idx`): the workers'
 * sweep re-enqueues those whose delivery was lost (a process died between claiming it and
 * enqueueing it).
 */
export async function findPendingCallbacks(db: Queryable, window: { finishedAfter: Date; finishedBefore: Date; limit?: number }): Promise<DownloadJobRow[]> {
  return db
    .selectFrom('download_jobs')
    .selectAll()
    .where('callback_state', '=', 'pending')
    .where('finished_at', '>=', window.finishedAfter)
    .where('finished_at', '<', window.finishedBefore)
    .orderBy('finished_at')
    .limit(window.limit ?? 500)
    .execute();
}
