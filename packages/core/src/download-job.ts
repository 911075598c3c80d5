/**
 * The download job contract, shared by the producer (API) and the consumer (worker): the queue
 * name, the request and payload schemas, the semantic validation and the result type. The worker
 * validates every payload again: a job may come from anything that can write to Redis.
 */
import { z } from 'zod';
import { DEFAULT_BANDS, resolveBand, type Band } from './bands.js';
import { ValidationError } from './errors.js';
import { parseProductName, type SentinelProduct } from './product-name.js';
import { tenantBucketName } from './tenant-id.js';

/** BullMQ queue name of scene download jobs. */
export const SCENE_DOWNLOAD_QUEUE = 'scene-downloads';

/** The workers' scheduled maintenance queue (job retention, the global cache's maintenance), beside {@link SCENE_DOWNLOAD_QUEUE}. */
export const MAINTENANCE_QUEUE = 'scenecache-maintenance';

/** Most bands one job may request (an L2A product has 36 band files). */
export const MAX_BANDS_PER_JOB = 36;

/** Most jobs one `POST /v1/downloads/batch` may enqueue. */
export const MAX_BATCH_SIZE = 100;

/** BullMQ priorities: 1 (highest) … 2 097 152 (lowest); jobs without one run before prioritized ones. */
export const MAX_PRIORITY = 2_097_152;

/**
 * `POST /v1/downloads` body (snake_case, as on the wire). Unknown fields are rejected so a typo
 * (`band` for `bands`) is an error, not a silently ignored option.
 */
export const downloadRequestSchema = z.strictObject({
  tenant_id: z.string().min(1).max(63),
  scene_id: z.string().min(1).max(100),
  bands: z.array(z.string().min(1).max(16)).min(1).max(MAX_BANDS_PER_JOB).optional(),
  priority: z.number().int().min(1).max(MAX_PRIORITY).optional(),
});
export type DownloadRequest = z.infer<typeof downloadRequestSchema>;

/** `POST /v1/downloads/batch` body. */
export const downloadBatchSchema = z.strictObject({
  jobs: z.array(downloadRequestSchema).min(1).max(MAX_BATCH_SIZE),
});

/** The BullMQ job data: a validated request with canonical bands, as the API enqueued it. */
export const downloadJobDataSchema = z.strictObject({
  tenant_id: z.string(),
  scene_id: z.string(),
  bands: z.array(z.string()).min(1).max(MAX_BANDS_PER_JOB),
  enqueued_at: z.string(),
});
export type DownloadJobData = z.infer<typeof downloadJobDataSchema>;

/** A request that passed every check: the parsed product, the tenant's bucket and resolved bands. */
export interface ValidatedDownload {
  readonly tenantId: string;
  readonly tenantBucket: string;
  readonly product: SentinelProduct;
  /** Distinct bands in request order. */
  readonly bands: readonly Band[];
}

/**
 * Check a request's meaning: tenant id, product name, bands for the product's level.
 *
 * @param input - `{tenant_id, scene_id, bands?}`; `bands` defaults to {@link DEFAULT_BANDS}.
 * @param tenantBucketPrefix - `TENANT_BUCKET_PREFIX`, to check the tenant's bucket name.
 * @throws ValidationError `invalid_tenant_id`, `invalid_product_name`, `unknown_band`,
 *   `band_not_in_level` or `duplicate_band` (two names of the same file, e.g. `B04` and `B04_10m`),
 *   with the offending field (`bands[2]`).
 */
export function validateDownload(
  input: { tenant_id: string; scene_id: string; bands?: readonly string[] | undefined },
  tenantBucketPrefix: string,
): ValidatedDownload {
  const tenantBucket = tenantBucketName(input.tenant_id, tenantBucketPrefix);
  const product = parseProductName(input.scene_id);
  const requested = input.bands ?? DEFAULT_BANDS;
  const bands: Band[] = [];
  requested.forEach((name, i) => {
    const band = resolveBand(product.level, name, `bands[${i}]`);
    const twin = bands.find((b) => b.id === band.id);
    if (twin) {
      throw new ValidationError('duplicate_band', `bands[${i}]: ${name} names the same file as ${twin.id}`, `bands[${i}]`);
    }
    bands.push(band);
  });
  return Object.freeze({ tenantId: input.tenant_id, tenantBucket, product, bands: Object.freeze(bands) });
}

/** Whether the tenant's copy needed any upstream byte (`downloaded`) or none (`reused`). */
export type CacheStatus = 'reused' | 'downloaded';

/** Lifecycle of a job as `download_jobs.status` records it. */
export type JobStatus = 'queued' | 'active' | 'completed' | 'failed';

/**
 * The result of a completed job: the BullMQ return value and the `download_jobs` row's figures.
 * Byte counts are bytes; `duration_ms` runs from the first time a worker picked the job up.
 */
export interface DownloadJobResult {
  scene_id: string;
  tenant_id: string;
  cache_status: CacheStatus;
  /** Bands this job fetched from upstream (canonical ids). */
  bands_downloaded: string[];
  /** Bands served from the global cache (canonical ids). */
  bands_reused: string[];
  /** Bytes this job fetched from upstream. */
  bytes_downloaded: number;
  /** Bytes server-side copied into the tenant bucket (0 for objects already there). */
  bytes_copied: number;
  /** band → `s3://tenant-bucket/key` of the tenant's copy. */
  objects: Record<string, string>;
  duration_ms: number;
  message: string;
}

/**
 * BullMQ options of every scene download job (plain data, so core needs no bullmq dependency).
 * Results live in `download_jobs`; BullMQ keeps finished jobs only briefly. Attempts count real
 * failures only: waiting for another job's download (DelayedError) does not spend one.
 * See docs.bullmq.io/guide/retrying-failing-jobs and docs.bullmq.io/guide/going-to-production.
 */
export const DOWNLOAD_JOB_OPTIONS = Object.freeze({
  /** Tries per job before it fails for good. */
  attempts: 5,
  /** Retry delay: 2 s, 4 s, 8 s, … */
  backoff: Object.freeze({ type: 'exponential' as const, delay: 2_000 }),
  /** Keep completed jobs 1 h / at most 10 000 (ages in seconds). */
  removeOnComplete: Object.freeze({ age: 3_600, count: 10_000 }),
  /** Keep failed jobs 24 h / at most 10 000. */
  removeOnFail: Object.freeze({ age: 86_400, count: 10_000 }),
});

/**
 * {@link DOWNLOAD_JOB_OPTIONS} with the attempts and backoff of the settings (`JOB_ATTEMPTS`,
 * `JOB_BACKOFF_MS`): what the API gives every job it enqueues.
 */
export function downloadJobOptions(settings: { readonly jobAttempts: number; readonly jobBackoffMs: number }) {
  return {
    ...DOWNLOAD_JOB_OPTIONS,
    attempts: settings.jobAttempts,
    backoff: { type: 'exponential' as const, delay: settings.jobBackoffMs },
  };
}
