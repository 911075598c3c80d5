/**
 * Tenant offboarding (`DELETE /v1/admin/tenants/{tenant_id}`): remove what scenecache keeps for a
 * tenant —
 *
 * - its `tenant_scenes` rows (which products its bucket received), always;
 * - with `deleteObjects`, every object in its bucket `{TENANT_BUCKET_PREFIX}{tenant_id}` (listed
 *   page by page and deleted with DeleteObjects, 1000 keys a request; the bucket itself stays, empty,
 *   for the operator to delete with its policies);
 * - with `purgeJobs`, its finished `download_jobs` rows (the rollup triggers take them out of the
 *   statistics too); otherwise they stay as history.
 *
 * Never touched: the global bucket and `global_scene_cache` (the cached products serve every
 * tenant), other tenants' rows and buckets, the tenant's API keys (revoke them with `npm run keys --
 * revoke`). A tenant with queued or active jobs is refused (409 `tenant_busy`): a job finishing
 * meanwhile would copy objects and write rows again. A dry run only reads (Postgres counts, an S3
 * listing) and reports, busy or not.
 *
 * Order of a run: objects first, then the rows, then the job rows. Every step is idempotent, so a
 * run that failed half-way (S3 or Postgres away: 503) is finished by running it again. A tenant
 * with nothing left (or never seen) is not an error: the reply counts zeros.
 */
import type { Kysely } from 'kysely';
import { tenantBucketName, ValidationError, type Logger } from '@scenecache/core';
import { deleteTenantJobs, deleteTenantScenes, summarizeTenant, type DB } from '@scenecache/db';
import { StorageError, type ObjectStore } from '@scenecache/storage';
import { ApiError } from './error-handler.js';

/** What to offboard and how. */
export interface OffboardingRequest {
  /** The tenant id as the client sent it (validated here). */
  tenantId: string;
  /** Report only; change nothing. */
  dryRun: boolean;
  /** Also delete every object in the tenant's bucket. */
  deleteObjects: boolean;
  /** Also delete the tenant's finished job rows. */
  purgeJobs: boolean;
}

/** What an offboarding removed (dry run: would remove). Counts are rows or objects; bytes are bytes. */
export interface OffboardingResult {
  tenantId: string;
  /** `{TENANT_BUCKET_PREFIX}{tenantId}`. */
  bucket: string;
  dryRun: boolean;
  deleteObjects: boolean;
  purgeJobs: boolean;
  /** `tenant_scenes` rows deleted (dry run: the tenant's rows). */
  tenantScenesDeleted: number;
  /** Band objects the tenant's `tenant_scenes` rows listed. */
  tenantSceneObjects: number;
  /** Objects deleted from the bucket (dry run: listed), with their listed bytes; `null` without `deleteObjects`. */
  objects: { bucketExists: boolean; deleted: number; bytes: number } | null;
  /** Finished job rows deleted (dry run: counted); 0 without `purgeJobs`. */
  jobsPurged: number;
  /** Job rows left. */
  jobsKept: number;
  /** Queued or active jobs of the tenant (a dry run reports them; a run refuses when there are any). */
  unfinishedJobs: number;
}

/** What {@link TenantOffboarding} works with. */
export interface TenantOffboardingOptions {
  db: Kysely<DB>;
  /** The S3 store (tenant buckets); without it `deleteObjects` fails with {@link missingStoreError}. */
  store: ObjectStore | undefined;
  /** `TENANT_BUCKET_PREFIX`. */
  tenantBucketPrefix: string;
  /** `GLOBAL_BUCKET`: a tenant id whose bucket name would be this one is refused. */
  globalBucket: string;
  /** Runs one short Postgres statement under the API's deadline (rejects with a 503 error). */
  runPostgres: <T>(call: () => Promise<T>) => Promise<T>;
  /** Runs a bulk deletion (possibly many batches) under a longer deadline. */
  runPostgresBulk: <T>(call: () => Promise<T>) => Promise<T>;
  /** The error when objects must be listed or deleted and there is no store (503). */
  missingStoreError: () => Error;
}

/** Whether a storage failure says the bucket does not exist. */
function isMissingBucket(err: unknown): boolean {
  return err instanceof StorageError && (err.s3Code === 'NoSuchBucket' || err.s3Status === 404);
}

/** Offboards tenants (see the module's doc). */
export class TenantOffboarding {
  constructor(private readonly o: TenantOffboardingOptions) {}

  /**
   * The tenant's bucket name.
   * @throws ValidationError `invalid_tenant_id` (400, field `tenant_id`) for an id that is not a
   *   tenant id, or whose bucket would be the global bucket.
   */
  bucketOf(tenantId: string): string {
    const bucket = tenantBucketName(tenantId, this.o.tenantBucketPrefix);
    if (bucket === this.o.globalBucket) {
      throw new ValidationError('invalid_tenant_id', `tenant_id ${JSON.stringify(tenantId)} makes bucket name ${bucket}, which is GLOBAL_BUCKET: the global cache is never offboarded`, 'tenant_id');
    }
    return bucket;
  }

  /**
   * Offboard one tenant (see the module's doc), logging what was done through `log`.
   *
   * @throws ValidationError `invalid_tenant_id` (400); {@link ApiError} `tenant_busy` (409) when
   *   the tenant has queued or active jobs and this is not a dry run; the missing-store error (503)
   *   for `deleteObjects` without a store; `service_unavailable` (503) when Postgres does not
   *   answer in time; `StorageError` (503) when S3 fails (what was deleted before stays deleted).
   */
  async offboard(request: OffboardingRequest, log: Pick<Logger, 'info'>): Promise<OffboardingResult> {
    const { tenantId, dryRun, deleteObjects, purgeJobs } = request;
    const bucket = this.bucketOf(tenantId);
    if (deleteObjects && this.o.store === undefined) throw this.o.missingStoreError();
    const footprint = await this.o.runPostgres(() => summarizeTenant(this.o.db, tenantId));
    if (!dryRun && footprint.unfinishedJobs > 0) {
      throw new ApiError(
        409,
        'tenant_busy',
        `tenant ${tenantId} has ${footprint.unfinishedJobs} queued or active job(s): let them finish, and revoke the tenant's API keys so that no new job arrives, then offboard it`,
      );
    }
    const objects = deleteObjects ? await this.clearBucket(bucket, dryRun) : null;
    const tenantScenesDeleted = dryRun ? footprint.scenes : await this.o.runPostgresBulk(() => deleteTenantScenes(this.o.db, tenantId));
    const finishedJobs = footprint.jobs - footprint.unfinishedJobs;
    const jobsPurged = !purgeJobs ? 0 : dryRun ? finishedJobs : await this.o.runPostgresBulk(() => deleteTenantJobs(this.o.db, tenantId));
    const result: OffboardingResult = {
      tenantId,
      bucket,
      dryRun,
      deleteObjects,
      purgeJobs,
      tenantScenesDeleted,
      tenantSceneObjects: footprint.objects,
      objects,
      jobsPurged,
      jobsKept: Math.max(0, footprint.jobs - jobsPurged),
      unfinishedJobs: footprint.unfinishedJobs,
    };
    // The result as the reply gives it (tenantId at the top level, as every log line carries it).
    log.info(result, dryRun ? 'tenant offboarding (dry run): nothing changed' : 'tenant offboarded');
    return result;
  }

  /**
   * List every object of `bucket`, deleting each page (≤ 1000 keys, one DeleteObjects request)
   * unless `dryRun`. A missing bucket holds nothing.
   * @returns objects and bytes as listed.
   * @throws StorageError for any failure but a missing bucket.
   */
  private async clearBucket(bucket: string, dryRun: boolean): Promise<{ bucketExists: boolean; deleted: number; bytes: number }> {
    const store = this.o.store!;
    let deleted = 0;
    let bytes = 0;
    try {
      for await (const page of store.listObjectPages(bucket)) {
        if (!dryRun) await store.deleteObjects(bucket, page.map((o) => o.key));
        deleted += page.length;
        bytes += page.reduce((sum, o) => sum + o.size, 0);
      }
    } catch (err) {
      if (deleted === 0 && isMissingBucket(err)) return { bucketExists: false, deleted: 0, bytes: 0 };
      throw err;
    }
    return { bucketExists: true, deleted, bytes };
  }
}
