/**
 * Retention of `download_jobs` (`DOWNLOAD_JOBS_RETENTION_DAYS`): finished job rows (completed,
 * failed or cancelled) whose UTC finish day is older than the retention are deleted in batches; the daily
 * rollups the statistics read (`job_daily_rollups`, migration 0006) are kept — each batch runs with
 * `SET LOCAL scenecache.retention = 'on'`, which the rollup triggers honour. Queued and active jobs
 * are never deleted.
 *
 * Job ids are UUIDv7 (RFC 9562 §5.7: the first 48 bits are the creation time in Unix ms), so the
 * API can tell an id whose job was deleted by retention (`expired`) from one that never existed.
 */
import { sql, type Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { DB } from './schema.js';

/** Rows one retention statement deletes at most (one short transaction each). */
export const RETENTION_BATCH_SIZE = 5_000;

/** The advisory-lock key each retention batch holds (transaction-level): one run fleet-wide at a time. */
export const RETENTION_LOCK_KEY = 0x5ce7e7e1;

/** A new job id: a UUIDv7 (time-ordered; its first 48 bits are the creation time, Unix ms). */
export function newJobId(): string {
  return uuidv7();
}

/**
 * When a UUIDv7 job id was made (Unix ms), or `undefined` for any other id (older UUIDv4 ids, ids
 * of other shapes). Source: RFC 9562 §5.7 (`unix_ts_ms`: bits 0–47; version nibble 7).
 */
export function jobIdCreatedAt(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/**
 * Whether the job `id` names, had it existed, would have been deleted by retention by now: a
 * UUIDv7 made before the start of the oldest UTC day retention keeps. (A job still unfinished is
 * never deleted; the caller asks only about ids it did not find.)
 *
 * @param retentionDays - `DOWNLOAD_JOBS_RETENTION_DAYS`; 0 (keep everything) → always false.
 */
export function isExpiredJobId(id: string, retentionDays: number, now = Date.now()): boolean {
  const createdAt = jobIdCreatedAt(id);
  if (createdAt === undefined || retentionDays <= 0) return false;
  return createdAt < retentionCutoff(retentionDays, now).getTime();
}

/** Midnight UTC of the oldest day retention keeps: rows that finished before it are deleted. */
export function retentionCutoff(retentionDays: number, now = Date.now()): Date {
  const today = new Date(now);
  return new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - retentionDays));
}

/** What {@link deleteExpiredJobs} did. */
export interface RetentionResult {
  /** Rows deleted. */
  deleted: number;
  /** Statements (batches) run. */
  batches: number;
  /** `false` when another run held the retention lock: this one did nothing. */
  ran: boolean;
  /** The cutoff used: rows finished before it (UTC midnight) were deleted. */
  cutoff: Date;
}

/**
 * Delete finished job rows that finished before {@link retentionCutoff}, {@link RETENTION_BATCH_SIZE}
 * at a time (each batch its own short transaction, rollups kept), until none is left or `signal`
 * aborts. Stops when another run holds the retention lock (`ran: false` when it got no batch at
 * all). Uses the partial index `download_jobs_finished_day_idx`.
 *
 * @param retentionDays - ≥ 1 (0 means keep everything: nothing is deleted).
 * @throws the database's error (a dependency outage: the caller retries later).
 */
export async function deleteExpiredJobs(db: Kysely<DB>, retentionDays: number, options: { now?: number; batchSize?: number; signal?: AbortSignal } = {}): Promise<RetentionResult> {
  const cutoff = retentionCutoff(retentionDays, options.now);
  if (retentionDays <= 0) return { deleted: 0, batches: 0, ran: true, cutoff };
  const batchSize = options.batchSize ?? RETENTION_BATCH_SIZE;
  const cutoffDay = cutoff.toISOString().slice(0, 10);
  let deleted = 0;
  let batches = 0;
  for (;;) {
    if (options.signal?.aborted) break;
    // A transaction-level lock per batch (PgBouncer in transaction mode keeps it): a second run
    // meanwhile finds it taken and stops.
    const n = await db.transaction().execute(async (trx) => {
      const locked = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${RETENTION_LOCK_KEY}) AS ok`.execute(trx);
      if (!locked.rows[0]?.ok) return undefined;
      await sql`SET LOCAL scenecache.retention = 'on'`.execute(trx);
      const res = await sql`
        DELETE FROM download_jobs WHERE id IN (
          SELECT id FROM download_jobs
          WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
            AND (finished_at AT TIME ZONE 'UTC')::date < ${cutoffDay}::date
          LIMIT ${batchSize})`.execute(trx);
      return Number(res.numAffectedRows ?? 0n);
    });
    if (n === undefined) return { deleted, batches, ran: batches > 0, cutoff };
    batches += 1;
    deleted += n;
    if (n < batchSize) break;
  }
  return { deleted, batches, ran: true, cutoff };
}
