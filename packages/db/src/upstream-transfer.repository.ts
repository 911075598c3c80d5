/**
 * `upstream_transfers` (migration 0004): the CDSE account's rolling transfer window. One row per
 * file download started (its size from the manifest); `UPSTREAM_MONTHLY_BYTES` is checked against
 * the sum over the last 30 days (CDSE's quota for general users: 12 TB per 30 days, then 1 MB/s
 * and one connection for the whole account — documentation.dataspace.copernicus.eu, "Quotas and
 * Limitations").
 */
import { sql } from 'kysely';
import type { Queryable } from './database.js';

/** The budget's window: 30 days (ms). */
export const UPSTREAM_BUDGET_WINDOW_MS = 30 * 86_400_000;

/** One file download started against the account. */
export interface UpstreamTransferInput {
  sceneId: string;
  band: string;
  tenantId: string;
  jobId: string;
  /** The file's size (bytes). */
  bytes: number;
}

/** Record a file download started now. */
export async function recordUpstreamTransfer(db: Queryable, input: UpstreamTransferInput): Promise<void> {
  await db.insertInto('upstream_transfers').values({ scene_id: input.sceneId, band: input.band, tenant_id: input.tenantId, job_id: input.jobId, bytes: input.bytes }).execute();
}

/** The window's figures (see {@link upstreamWindow}). */
export interface UpstreamWindow {
  /** Bytes of the downloads started in the last 30 days. */
  bytes: number;
  /** When the oldest of them leaves the window (null: none in the window). */
  oldestLeavesAt: Date | null;
}

/**
 * Bytes whose download started within the last 30 days, and when the oldest of them leaves the
 * window. One index range scan (`upstream_transfers_started_at_idx`).
 */
export async function upstreamWindow(db: Queryable, now: Date = new Date()): Promise<UpstreamWindow> {
  const since = new Date(now.getTime() - UPSTREAM_BUDGET_WINDOW_MS);
  const row = await db
    .selectFrom('upstream_transfers')
    .select([sql<string>`COALESCE(SUM(bytes), 0)::text`.as('bytes'), sql<Date | null>`MIN(started_at)`.as('oldest')])
    .where('started_at', '>', since)
    .executeTakeFirstOrThrow();
  return { bytes: Number(row.bytes), oldestLeavesAt: row.oldest ? new Date(new Date(row.oldest).getTime() + UPSTREAM_BUDGET_WINDOW_MS) : null };
}
