/**
 * The Postgres statements a reused job makes (apps/worker/src/scene-download.processor.ts), in its
 * order and through the same repository functions, done bare from the bench process: row marked
 * active, cache row read, tenant scene upserted, cache hit counted, row marked completed. With
 * {@link timePipelineS3Calls} (reuse-s3-calls.ts) it tells how much of a job's run is its S3 and
 * Postgres calls and how much is everything else (worker CPU, Redis, BullMQ).
 */
import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import type { DownloadJobResult } from '@scenecache/core';
import { findScene, markJobActive, markJobCompleted, recordCacheHit, upsertTenantScene, type DB } from '@scenecache/db';

/** What one bare run of the statements writes: a job row `jobId` (created), its tenant scene, a cache hit. */
export interface ReusedJobRecord {
  readonly jobId: string;
  readonly tenantId: string;
  /** Product name without `.SAFE`; its cache row must exist. */
  readonly sceneId: string;
  /** band id → object key (the same in the global and the tenant bucket). */
  readonly keys: Readonly<Record<string, string>>;
  readonly tenantBucket: string;
  /** Bytes the copies would have copied (recorded in the row). */
  readonly bytesCopied: number;
}

/**
 * Run a reused job's Postgres statements for `job`, one after the other as the pipeline does.
 * @returns the elapsed ms. @throws the database's error.
 */
export async function timePipelineDbCalls(db: Kysely<DB>, job: ReusedJobRecord): Promise<number> {
  const bands = Object.keys(job.keys);
  const result: DownloadJobResult = {
    scene_id: job.sceneId,
    tenant_id: job.tenantId,
    cache_status: 'reused',
    bands_downloaded: [],
    bands_reused: bands,
    bytes_downloaded: 0,
    bytes_copied: job.bytesCopied,
    objects: Object.fromEntries(Object.entries(job.keys).map(([band, key]) => [band, `s3://${job.tenantBucket}/${key}`])),
    duration_ms: 0,
    message: `served ${bands.length} band(s) from the cache`,
  };
  const t0 = performance.now();
  await markJobActive(db, { id: job.jobId, tenantId: job.tenantId, sceneId: job.sceneId, bands, workerId: 'bench', attempt: 1 });
  await findScene(db, job.sceneId);
  await upsertTenantScene(db, { tenantId: job.tenantId, sceneId: job.sceneId, bucket: job.tenantBucket, bands: { ...job.keys } });
  await recordCacheHit(db, job.sceneId);
  await markJobCompleted(db, job.jobId, result, 'bench');
  return performance.now() - t0;
}
