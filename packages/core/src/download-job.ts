/**
 * The download job contract, shared by the producer (API) and the consumer (worker): the queue
 * name, the request and payload schemas, the semantic validation and the result type. The worker
 * validates every payload again: a job may come from anything that can write to Redis.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
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

/** Longest `callback_url` accepted (characters). */
export const MAX_CALLBACK_URL_LENGTH = 2048;

/**
 * `POST /v1/downloads` body (snake_case, as on the wire). Unknown fields are rejected so a typo
 * (`band` for `bands`) is an error, not a silently ignored option.
 */
export const downloadRequestSchema = z.strictObject({
  tenant_id: z.string().min(1).max(63),
  scene_id: z.string().min(1).max(100),
  bands: z.array(z.string().min(1).max(16)).min(1).max(MAX_BANDS_PER_JOB).optional(),
  priority: z.number().int().min(1).max(MAX_PRIORITY).optional(),
  callback_url: z
    .string()
    .min(1)
    .max(MAX_CALLBACK_URL_LENGTH)
    .optional()
    .meta({
      format: 'uri',
      description:
        'POSTed the job\'s view (as GET /v1/downloads/{id} returns it) once the job ends (completed, failed for good, cancelled), signed with HMAC-SHA256 under the API key\'s callback secret (header X-Scenecache-Signature: t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">). https only (http to 127.0.0.1, ::1 or localhost when CALLBACK_ALLOW_HTTP_LOOPBACK is on), no user name or password, at most 2048 characters; redirects are not followed.',
    }),
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

/** Every status of a job, in lifecycle order. */
export const JOB_STATUSES = Object.freeze(['queued', 'active', 'completed', 'failed', 'cancelled'] as const);

/**
 * Lifecycle of a job as `download_jobs.status` records it: `queued → active → completed | failed`,
 * and `cancelled` (`DELETE /v1/downloads/{id}`) from `queued` or `active`.
 */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The statuses a job ends in: nothing changes it afterwards. */
export const FINISHED_JOB_STATUSES: readonly JobStatus[] = Object.freeze(['completed', 'failed', 'cancelled']);

/** Whether a job in `status` has ended (completed, failed for good, or cancelled). */
export function isFinishedStatus(status: string): boolean {
  return (FINISHED_JOB_STATUSES as readonly string[]).includes(status);
}

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

// ---------------------------------------------------------------------------------------------
// The job as clients see it (`GET /v1/downloads/{id}`, and the body of a completion callback).
// ---------------------------------------------------------------------------------------------

/** States of a job's completion callback. */
export const CALLBACK_STATES = Object.freeze(['pending', 'delivered', 'failed'] as const);

/**
 * `pending` until delivered (also while the job runs), `delivered` once an attempt got a 2xx,
 * `failed` once the receiver answered 410 or every attempt failed (`CALLBACK_MAX_ATTEMPTS`).
 */
export type CallbackState = (typeof CALLBACK_STATES)[number];

/** The fields of a `download_jobs` row the job view shows (a row of @scenecache/db is one). */
export interface DownloadJobRecord {
  id: string;
  tenant_id: string;
  scene_id: string;
  bands_requested: string[];
  priority: number | null;
  status: JobStatus;
  cache_status: CacheStatus | null;
  bands_downloaded: string[];
  bands_reused: string[];
  bytes_downloaded: number;
  bytes_copied: number;
  objects: Record<string, string> | null;
  message: string | null;
  attempts: number;
  waits: number;
  waiting_for: string | null;
  error_code: string | null;
  error_message: string | null;
  enqueued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  duration_ms: number | null;
  worker_id: string | null;
  cancel_requested_at: Date | null;
  cancelled_at: Date | null;
  callback_url: string | null;
  callback_state: CallbackState | null;
  callback_attempts: number;
  callback_last_status: number | null;
  callback_last_error: string | null;
  callback_delivered_at: Date | null;
}

const jobStatusSchema = z.enum(JOB_STATUSES);

/** The reply to an enqueue: the job's id, status and what was enqueued (canonical bands). */
export const enqueuedJobViewSchema = z.object({
  job_id: z.string(),
  status: jobStatusSchema,
  tenant_id: z.string(),
  /** Product name without `.SAFE`. */
  scene_id: z.string(),
  bands: z.array(z.string()),
  priority: z.number().int().nullable(),
});
export type EnqueuedJobView = z.infer<typeof enqueuedJobViewSchema>;

/** A job's completion callback and its delivery. */
export const callbackViewSchema = z.object({
  url: z.string(),
  state: z.enum(CALLBACK_STATES).meta({ description: '`pending` until delivered (also while the job runs), `delivered` (a 2xx), `failed` (the receiver answered 410, or every attempt failed)' }),
  /** POSTs made so far. */
  attempts: z.number().int(),
  last_status: z.number().int().nullable().meta({ description: 'HTTP status of the last attempt; null before the first or when it got no answer (timeout, connection refused)' }),
  last_error: z.string().nullable().meta({ description: 'Why the last attempt failed (no answer, or the status it got); null once delivered' }),
  delivered_at: z.iso.datetime().nullable(),
});
export type CallbackView = z.infer<typeof callbackViewSchema>;

/** A job with everything `download_jobs` records about it. */
export const jobViewSchema = enqueuedJobViewSchema.extend({
  cache_status: z.enum(['reused', 'downloaded']).nullable(),
  bands_downloaded: z.array(z.string()),
  bands_reused: z.array(z.string()),
  /** Bytes fetched from upstream. */
  bytes_downloaded: z.number().int(),
  /** Bytes server-side copied into the tenant bucket. */
  bytes_copied: z.number().int(),
  /** band → `s3://bucket/key` of the tenant's copy. */
  objects: z.record(z.string(), z.string()).nullable(),
  message: z.string().nullable(),
  attempts: z.number().int(),
  /** Times the job was delayed waiting for another job's download or an upstream slot. */
  waits: z.number().int(),
  /** While the job is delayed: what it waits for (`band_download`, `upstream_slot`, `upstream_budget`, `product_preparation`); null otherwise. */
  waiting_for: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  enqueued_at: z.iso.datetime(),
  started_at: z.iso.datetime().nullable(),
  finished_at: z.iso.datetime().nullable(),
  duration_ms: z.number().int().nullable(),
  worker_id: z.string().nullable(),
  cancel_requested: z.boolean().meta({ description: 'A cancel was asked (DELETE /v1/downloads/{id}). With status `active`, the job stops at its next step (`cancelled`) — or completes when it was past its last one.' }),
  cancel_requested_at: z.iso.datetime().nullable(),
  cancelled_at: z.iso.datetime().nullable(),
  callback: callbackViewSchema.nullable().meta({ description: 'The completion callback (`callback_url` at enqueue) and its delivery; null when none was asked for.' }),
});
export type JobView = z.infer<typeof jobViewSchema>;

/** The short view of a job (enqueue replies). */
export function toEnqueuedJobView(row: DownloadJobRecord): EnqueuedJobView {
  return {
    job_id: row.id,
    status: row.status,
    tenant_id: row.tenant_id,
    scene_id: row.scene_id,
    bands: row.bands_requested,
    priority: row.priority,
  };
}

/** The full view of a job: `GET /v1/downloads/{id}`, and the body of its completion callback. */
export function toJobView(row: DownloadJobRecord): JobView {
  return {
    ...toEnqueuedJobView(row),
    cache_status: row.cache_status,
    bands_downloaded: row.bands_downloaded,
    bands_reused: row.bands_reused,
    bytes_downloaded: row.bytes_downloaded,
    bytes_copied: row.bytes_copied,
    objects: row.objects,
    message: row.message,
    attempts: row.attempts,
    waits: row.waits,
    waiting_for: row.status === 'queued' ? row.waiting_for : null,
    error: row.error_code === null ? null : { code: row.error_code, message: row.error_message ?? '' },
    enqueued_at: row.enqueued_at.toISOString(),
    started_at: row.started_at?.toISOString() ?? null,
    finished_at: row.finished_at?.toISOString() ?? null,
    duration_ms: row.duration_ms,
    worker_id: row.worker_id,
    cancel_requested: row.cancel_requested_at !== null,
    cancel_requested_at: row.cancel_requested_at?.toISOString() ?? null,
    cancelled_at: row.cancelled_at?.toISOString() ?? null,
    callback:
      row.callback_url === null
        ? null
        : {
            url: row.callback_url,
            state: row.callback_state ?? 'pending',
            attempts: row.callback_attempts,
            last_status: row.callback_last_status,
            last_error: row.callback_last_error,
            delivered_at: row.callback_delivered_at?.toISOString() ?? null,
          },
  };
}

// ---------------------------------------------------------------------------------------------
// Job ends: the notification long-polls wait for, and the completion callback's delivery.
// ---------------------------------------------------------------------------------------------

/**
 * Redis pub/sub channel on which the id of every job whose row was finalized (completed, failed
 * for good, cancelled) is published — by the worker that recorded it, or the API that cancelled
 * it. `GET /v1/downloads/{id}?wait=` listens to it. At-most-once: listeners re-read the row.
 *
 * @param queuePrefix - `QUEUE_PREFIX`: each deployment (and test) has its own channel.
 */
export function jobEndedChannel(queuePrefix: string): string {
  return `${queuePrefix}:download-jobs:ended`;
}

/** BullMQ queue of completion callback deliveries, processed by the workers beside {@link SCENE_DOWNLOAD_QUEUE}. */
export const CALLBACK_QUEUE = 'scenecache-callbacks';

/**
 * One delivery (the BullMQ job data; its job id is the download job's id, so a job's end is
 * delivered once however often it is announced). `body` is the job view when it ended, serialized
 * once: every attempt sends the same bytes. `key_id` names the `api_keys` row whose secret signs
 * it (null: `CALLBACK_SIGNING_SECRET`); the secret itself never enters Redis.
 */
export const callbackJobDataSchema = z.strictObject({
  job_id: z.string(),
  url: z.string(),
  key_id: z.string().nullable(),
  /** `X-Scenecache-Delivery`: the same on every attempt, for the receiver's de-duplication. */
  delivery_id: z.string(),
  body: z.string(),
});
export type CallbackJobData = z.infer<typeof callbackJobDataSchema>;

/**
 * The delivery of a job whose callback was just claimed (`callback_state` → `pending`): a fresh
 * delivery id, the key that signs it, and the job's view as it ended, serialized once.
 * @param row - the claimed row; its `callback_url` is set.
 */
export function toCallbackJobData(row: DownloadJobRecord & { readonly callback_key_id: string | null }): CallbackJobData {
  return {
    job_id: row.id,
    url: row.callback_url!,
    key_id: row.callback_key_id,
    delivery_id: randomUUID(),
    body: JSON.stringify(toJobView(row)),
  };
}

/**
 * BullMQ options of a callback delivery: `CALLBACK_MAX_ATTEMPTS` attempts, exponential backoff
 * from `CALLBACK_BACKOFF_MS` (doubling) with 50 % jitter (each delay is 50–100 % of its nominal
 * value, so receivers that failed together are not retried together); finished deliveries kept
 * a day (their outcome is recorded on the job's row).
 */
export function callbackJobOptions(settings: { readonly callbackMaxAttempts: number; readonly callbackBackoffMs: number }) {
  return {
    attempts: settings.callbackMaxAttempts,
    backoff: { type: 'exponential' as const, delay: settings.callbackBackoffMs, jitter: 0.5 },
    removeOnComplete: { age: 86_400, count: 10_000 },
    removeOnFail: { age: 7 * 86_400, count: 10_000 },
  };
}

/** Callback request headers (lower-case, as Node hands them to a receiver). */
export const CALLBACK_HEADERS = Object.freeze({
  /** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
  signature: 'x-scenecache-signature',
  /** The download job's id. */
  jobId: 'x-scenecache-job-id',
  /** The delivery's id: the same on every attempt. */
  delivery: 'x-scenecache-delivery',
  /** 1 for the first attempt, 2 for the first retry, … */
  attempt: 'x-scenecache-delivery-attempt',
});

/** Prefix of every callback signing secret (`whsec_` + 32 random bytes, base64url). */
export const CALLBACK_SECRET_PREFIX = 'whsec_';

/**
 * The `X-Scenecache-Signature` value of `body` sent at `timestamp`: `t=<timestamp>,v1=<hex>`, the
 * HMAC-SHA256 under `secret` (its UTF-8 bytes) of `"<timestamp>.<body>"` — Stripe's scheme: the
 * signed timestamp lets a receiver refuse replays of old deliveries.
 *
 * @param timestamp - Unix seconds.
 */
export function signCallback(secret: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/**
 * What a receiver does: whether `header` (an `X-Scenecache-Signature`) signs `body` (the raw
 * bytes as received, decoded as UTF-8) under `secret`, at most `toleranceSeconds` from `now`.
 * Compares in constant time.
 *
 * @param now - Unix seconds. @defaultValue the clock
 * @param toleranceSeconds - @defaultValue 300
 */
export function verifyCallbackSignature(secret: string, body: string, header: string, options: { now?: number; toleranceSeconds?: number } = {}): boolean {
  const parts = new Map(header.split(',').map((part) => [part.slice(0, part.indexOf('=')).trim(), part.slice(part.indexOf('=') + 1).trim()] as const));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(signCallback(secret, t, body).slice(`t=${t},v1=`.length), 'hex');
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

/** Hosts an `http://` callback may name when `CALLBACK_ALLOW_HTTP_LOOPBACK` is on. */
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * Check a callback URL: absolute, `https:` — or `http:` to a loopback host (`127.0.0.1`, `::1`,
 * `localhost`) when `allowHttpLoopback` — no user name or password, no fragment, at most
 * {@link MAX_CALLBACK_URL_LENGTH} characters. Only these are ever called: the service POSTs to
 * what its clients name, so nothing else (another scheme, a plain-http host on the network) is
 * accepted, and redirects are never followed.
 *
 * @param field - the request field, for the error (`callback_url`, `jobs[3].callback_url`).
 * @returns the URL, normalized (`new URL(value).href`).
 * @throws ValidationError `invalid_callback_url` naming `field`.
 */
export function checkCallbackUrl(value: string, options: { allowHttpLoopback: boolean }, field = 'callback_url'): string {
  const invalid = (why: string) => new ValidationError('invalid_callback_url', `${field}: ${why}`, field);
  if (value.length > MAX_CALLBACK_URL_LENGTH) throw invalid(`must be at most ${MAX_CALLBACK_URL_LENGTH} characters`);
  if (!URL.canParse(value)) throw invalid('must be an absolute URL');
  const url = new URL(value);
  if (url.username !== '' || url.password !== '') throw invalid('must not carry a user name or password');
  if (url.hash !== '') throw invalid('must not have a fragment');
  if (url.protocol === 'https:') {
    if (url.hostname === '') throw invalid('must name a host');
  } else if (url.protocol === 'http:') {
    if (!options.allowHttpLoopback) throw invalid('must be https://');
    if (!LOOPBACK_HOSTS.has(url.hostname)) throw invalid('http:// is allowed to loopback hosts only (127.0.0.1, ::1, localhost); use https://');
  } else {
    throw invalid('must be https://');
  }
  if (url.href.length > MAX_CALLBACK_URL_LENGTH) throw invalid(`must be at most ${MAX_CALLBACK_URL_LENGTH} characters`);
  return url.href;
}
