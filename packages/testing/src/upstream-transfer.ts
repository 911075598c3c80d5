/**
 * `upstream_transfers` rows dated as a test needs (the repository's `recordUpstreamTransfer`
 * stamps `now()`), for tests of the rolling 30-day transfer budget: `GET /v1/fleet`, the API's
 * metrics and the dashboard.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { DB } from '@scenecache/db';

/** One file download started against the CDSE account. */
export interface SeededUpstreamTransfer {
  /** The file's size (bytes). */
  bytes: number;
  /** When its download started. */
  startedAt: Date;
  /** @defaultValue `S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035` */
  sceneId?: string;
  /** @defaultValue `B04` */
  band?: string;
  /** @defaultValue `acme` */
  tenantId?: string;
  /** @defaultValue a random UUID */
  jobId?: string;
}

/**
 * Insert one `upstream_transfers` row per transfer, in one statement.
 *
 * @throws the insert's error (e.g. negative bytes break the table's check).
 */
export async function insertUpstreamTransfers(db: Kysely<DB>, transfers: readonly SeededUpstreamTransfer[]): Promise<void> {
  if (transfers.length === 0) return;
  await db
    .insertInto('upstream_transfers')
    .values(
      transfers.map((t) => ({
        scene_id: t.sceneId ?? 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035',
        band: t.band ?? 'B04',
        tenant_id: t.tenantId ?? 'acme',
        job_id: t.jobId ?? randomUUID(),
        bytes: t.bytes,
        started_at: t.startedAt,
      })),
    )
    .execute();
}
