/**
 * Settings: parsed once at start from the environment into a frozen typed object. Nothing else
 * reads `process.env`. A bad value stops the process with every bad variable listed.
 */
import { z } from 'zod';
import { ScenecacheError } from './errors.js';
import { FAILPOINT_NAMES, type FailpointAction } from './failpoint.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const url = z.string().url();
/** A URL of one of `protocols` (e.g. `['postgres:', 'postgresql:']`). */
const urlOf = (protocols: readonly string[]) => url.refine((v) => !URL.canParse(v) || protocols.includes(new URL(v).protocol), `must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL`);
const checksumMode = z.enum(['WHEN_SUPPORTED', 'WHEN_REQUIRED']);

/** Real CDSE endpoints (documentation.dataspace.copernicus.eu: "OData", "Access token"). */
export const CDSE_DEFAULTS = Object.freeze({
  tokenUrl: 'https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token',
  catalogueUrl: 'https://catalogue.dataspace.copernicus.eu/odata/v1',
  downloadUrl: 'https://download.dataspace.copernicus.eu/odata/v1',
});

const envSchema = z.object({
  DATABASE_URL: urlOf(['postgres:', 'postgresql:']).default('postgres://root@127.0.0.1:5432/scenecache'),
  LOCK_DATABASE_URL: urlOf(['postgres:', 'postgresql:']).optional(),
  REDIS_URL: urlOf(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('scenecache'),
  S3_ENDPOINT: url.optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: z.string().min(1).default('S3RVER'),
  S3_SECRET_ACCESS_KEY: z.string().min(1).default('S3RVER'),
  S3_FORCE_PATH_STYLE: bool.optional(),
  S3_REQUEST_CHECKSUM_CALCULATION: checksumMode.optional(),
  S3_RESPONSE_CHECKSUM_VALIDATION: checksumMode.optional(),
  EMBEDDED_S3_PORT: int(1, 65535).default(4568),
  EMBEDDED_S3_DIR: z.string().min(1).default('.data/s3'),
  GLOBAL_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name').default('scenecache-global'),
  TENANT_BUCKET_PREFIX: z.string().regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'must be lower-case letters, digits and hyphens').default('scenecache-tenant-'),
  CDSE_TOKEN_URL: url.default(CDSE_DEFAULTS.tokenUrl),
  CDSE_CATALOGUE_URL: url.default(CDSE_DEFAULTS.catalogueUrl),
  CDSE_DOWNLOAD_URL: url.default(CDSE_DEFAULTS.downloadUrl),
  CDSE_USERNAME: z.string().min(1).optional(),
  CDSE_PASSWORD: z.string().min(1).optional(),
  CDSE_TOTP: z.string().regex(/^\d{6}$/).optional(),
  UPSTREAM_CONCURRENCY: int(1, 64).default(4),
  DOWNLOAD_JOBS_RETENTION_DAYS: int(0, 36_500).default(90),
  UPSTREAM_MONTHLY_BYTES: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).default(12e12),
  GLOBAL_CACHE_MAX_BYTES: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  CACHE_UNUSED_TTL_DAYS: int(1, 36_500).optional(),
  CACHE_INVALID_RETENTION_DAYS: int(0, 36_500).default(30),
  MAINTENANCE_INTERVAL_MS: int(1_000, 86_400_000).default(300_000),
  WORKER_CONCURRENCY: int(1, 256).default(8),
  WAITER_FALLBACK_DELAY_MS: int(100, 3_600_000).default(5_000),
  SHUTDOWN_TIMEOUT_MS: int(1_000, 3_600_000).default(30_000),
  JOB_LOCK_DURATION_MS: int(1_000, 600_000).default(30_000),
  JOB_STALLED_INTERVAL_MS: int(500, 600_000).default(15_000),
  JOB_ATTEMPTS: int(1, 100).default(5),
  JOB_BACKOFF_MS: int(0, 3_600_000).default(2_000),
  REQUIRE_IDEMPOTENCY_KEY: bool.default(false),
  RATE_LIMIT_MAX: int(0, 1_000_000).default(600),
  RATE_LIMIT_WINDOW_MS: int(100, 86_400_000).default(60_000),
  PRODUCT_NOT_FOUND_TTL_SECONDS: int(0, 604_800).default(3_600),
  UPSTREAM_INTEGRITY_TTL_SECONDS: int(0, 604_800).default(3_600),
  REDIS_COMMAND_TIMEOUT_MS: int(100, 600_000).default(30_000),
  DATABASE_QUERY_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  DEPENDENCY_LIVENESS_TIMEOUT_MS: int(1_000, 86_400_000).default(120_000),
  FAILPOINTS: z
    .string()
    .regex(/^[a-z-]+=(pause|kill|error)(,[a-z-]+=(pause|kill|error))*$/, 'must be name=pause|kill|error[,...]')
    .refine((v) => v.split(',').every((pair) => (FAILPOINT_NAMES as readonly string[]).includes(pair.split('=')[0]!)), `names must be among ${FAILPOINT_NAMES.join(', ')}`)
    .optional(),
  API_PORT: int(0, 65535).default(8080),
  API_HOST: z.string().min(1).default('0.0.0.0'),
  WORKER_METRICS_PORT: int(0, 65535).default(9464),
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  CALLBACK_SIGNING_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  CALLBACK_ALLOW_HTTP_LOOPBACK: bool.default(false),
  CALLBACK_MAX_ATTEMPTS: int(1, 50).default(12),
  CALLBACK_BACKOFF_MS: int(10, 3_600_000).default(10_000),
  CALLBACK_TIMEOUT_MS: int(100, 120_000).default(10_000),
  CALLBACK_CONCURRENCY: int(1, 256).default(16),
  STAC_SIGNED_URL_TTL_SECONDS: int(1, 604_800).default(3_600),
  AUTH_MODE: z.enum(['keys', 'open']).default('keys'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Typed, frozen settings. Units: ms for durations. */
export interface Settings {
  readonly databaseUrl: string;
  /** Connection for advisory locks: must reach Postgres directly, never a transaction-pooling PgBouncer. @defaultValue `databaseUrl` */
  readonly lockDatabaseUrl: string;
  readonly redisUrl: string;
  /** BullMQ key prefix. @defaultValue `scenecache` */
  readonly queuePrefix: string;
  /** Unset: the embedded s3rver on `embeddedS3Port`. */
  readonly s3Endpoint: string | undefined;
  readonly s3Region: string;
  readonly s3AccessKeyId: string;
  readonly s3SecretAccessKey: string;
  /** @defaultValue `true` when an endpoint is set or embedded, `false` for AWS */
  readonly s3ForcePathStyle: boolean;
  /** AWS SDK flexible checksums: `WHEN_REQUIRED` for non-AWS endpoints (see DESIGN, S3 notes). */
  readonly s3RequestChecksumCalculation: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  readonly s3ResponseChecksumValidation: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  readonly embeddedS3Port: number;
  readonly embeddedS3Dir: string;
  readonly globalBucket: string;
  readonly tenantBucketPrefix: string;
  readonly cdseTokenUrl: string;
  readonly cdseCatalogueUrl: string;
  readonly cdseDownloadUrl: string;
  readonly cdseUsername: string | undefined;
  readonly cdsePassword: string | undefined;
  readonly cdseTotp: string | undefined;
  /** Fleet-wide concurrent upstream downloads. @defaultValue 4 (CDSE's per-account limit) */
  readonly upstreamConcurrency: number;
  /**
   * Upstream bytes the fleet may start downloading per rolling 30 days; past it downloads wait
   * (`waiting_for: upstream_budget`) and cached jobs go on. @defaultValue 12e12 (CDSE: 12 TB per
   * 30 days per account, then 1 MB/s and one connection)
   */
  readonly upstreamMonthlyBytes: number;
  /**
   * Finished `download_jobs` rows older than this many days (by the UTC day they finished) are
   * deleted by the workers' scheduled maintenance, in batches; the daily rollups the statistics
   * read are kept. 0 keeps every row. @defaultValue 90
   */
  readonly downloadJobsRetentionDays: number;
  /**
   * The global bucket's size budget (bytes the cache table registers). Past it, scheduled
   * maintenance evicts the least recently used products until the cache is at or below 90 % of it.
   * `undefined`: no budget. @defaultValue undefined
   */
  readonly globalCacheMaxBytes: number | undefined;
  /** Products not used (no job served, no band added) for this many days are expired by maintenance. `undefined`: never. @defaultValue undefined */
  readonly cacheUnusedTtlDays: number | undefined;
  /** Invalid cache rows whose invalidation is older than this many days are deleted with their objects by maintenance (the seed's 30-day cleanup). @defaultValue 30 */
  readonly cacheInvalidRetentionDays: number;
  /** How often the workers' scheduled cache maintenance runs (ms). @defaultValue 300000 */
  readonly maintenanceIntervalMs: number;
  /** Jobs one worker process runs at once. @defaultValue 8 */
  readonly workerConcurrency: number;
  /** Longest a waiting job stays delayed when nobody wakes it (ms). @defaultValue 5000 */
  readonly waiterFallbackDelayMs: number;
  /** Deadline of the graceful shutdown (ms). @defaultValue 30000 */
  readonly shutdownTimeoutMs: number;
  /**
   * BullMQ job lock (ms): a killed worker's jobs go back to the queue this long after it died
   * (plus up to one stalled interval). Renewed every half of it. @defaultValue 30000
   */
  readonly jobLockDurationMs: number;
  /** How often workers look for stalled jobs (ms). @defaultValue 15000 */
  readonly jobStalledIntervalMs: number;
  /** Tries per job before it fails for good (set at enqueue). @defaultValue 5 */
  readonly jobAttempts: number;
  /** First retry delay (ms), doubled at each retry (set at enqueue). @defaultValue 2000 */
  readonly jobBackoffMs: number;
  /** Refuse `POST /v1/downloads` without an `Idempotency-Key` (400). @defaultValue false */
  readonly requireIdempotencyKey: boolean;
  /**
   * Requests each API key may make to `/v1` per {@link rateLimitWindowMs}, counted in Redis
   * across every API replica (one request = one unit, whatever its size: a batch of 100 jobs
   * counts once). Over it: 429 `rate_limited` with `Retry-After`. `ADMIN_API_KEY` is exempt; in
   * open dev mode the budget is per client IP. 0 turns rate limiting off. @defaultValue 600
   */
  readonly rateLimitMax: number;
  /** The rate limit's fixed window (ms), starting at a key's first request. @defaultValue 60000 */
  readonly rateLimitWindowMs: number;
  /** Seconds a catalogue "not found" is remembered fleet-wide (0 = off). @defaultValue 3600 */
  readonly productNotFoundTtlSeconds: number;
  /**
   * Seconds a (product, file) that failed SHA3-256 or size verification twice is not fetched
   * again, fleet-wide: jobs that want it fail at once with `upstream_integrity` instead of
   * spending the account's quota on bytes known to be bad (0 = off). @defaultValue 3600
   */
  readonly upstreamIntegrityTtlSeconds: number;
  /**
   * Longest a worker's own Redis command waits for its reply (ms); then it fails as an outage and
   * the job is handed back. Longer than a typical blip on purpose: a shorter Redis outage is ridden
   * out (commands wait for the reconnect) instead of cancelling the job's transfers in flight; a
   * silent socket is caught sooner by the 20 s socket timeout. BullMQ's blocking reads are bounded
   * separately. @defaultValue 30000
   */
  readonly redisCommandTimeoutMs: number;
  /**
   * Longest a worker's Postgres query waits for its result (ms, client side: a connection that
   * went silent fails instead of hanging). @defaultValue 30000
   */
  readonly databaseQueryTimeoutMs: number;
  /**
   * A worker whose Redis or Postgres has been unreachable this long (ms) reports not-live on
   * `/healthz` (Kubernetes restarts it) and gives up its advisory locks. @defaultValue 120000
   */
  readonly dependencyLivenessTimeoutMs: number;
  /**
   * Failpoints (tests only, never in production): `name=pause|kill|error`, comma-separated, e.g.
   * `bands-stored=pause`. See `failpoint.ts`.
   */
  readonly failpoints: Readonly<Record<string, FailpointAction>>;
  readonly apiPort: number;
  readonly apiHost: string;
  readonly workerMetricsPort: number;
  /**
   * Whether `WORKER_METRICS_PORT` was set. Unset, a worker whose default port is taken uses the
   * next free one (and logs it); set, the port is strict (a taken port fails the start).
   */
  readonly workerMetricsPortSet: boolean;
  readonly adminApiKey: string | undefined;
  /**
   * Signs the completion callbacks of jobs enqueued with `ADMIN_API_KEY` or under `AUTH_MODE=open`
   * (keys of `api_keys` have a secret each). Unset: such jobs cannot ask for a callback (400
   * `callback_secret_missing`). The workers need it too (they sign). @defaultValue undefined
   */
  readonly callbackSigningSecret: string | undefined;
  /**
   * Accept `http://` callback URLs to loopback hosts (`127.0.0.1`, `::1`, `localhost`) — local
   * development and tests; every other callback URL must be `https://`. @defaultValue false
   */
  readonly callbackAllowHttpLoopback: boolean;
  /** Delivery attempts of one completion callback before it is given up (`failed`). @defaultValue 12 */
  readonly callbackMaxAttempts: number;
  /**
   * First retry delay of a callback delivery (ms), doubled at each retry and shortened by up to
   * half at random (jitter): with the defaults the 12 attempts span at most ~11.4 h. @defaultValue 10000
   */
  readonly callbackBackoffMs: number;
  /** Deadline of one callback POST, connection to last byte of the reply's headers (ms). @defaultValue 10000 */
  readonly callbackTimeoutMs: number;
  /** Callback deliveries one worker process runs at once. @defaultValue 16 */
  readonly callbackConcurrency: number;
  /**
   * Lifetime (seconds) of the presigned HTTPS asset hrefs the STAC API gives a tenant key with
   * `?sign=true` (S3 SigV4 query signing allows at most 7 days, 604800 s). @defaultValue 3600
   */
  readonly stacSignedUrlTtlSeconds: number;
  /**
   * `keys` (the default): every `/v1` request needs a Bearer key — `ADMIN_API_KEY` or a key of
   * `api_keys`; with neither configured, every `/v1` request is 401 (never open). `open` (demo,
   * local development only): no key is asked for or checked, every caller is an admin; it cannot
   * be combined with `ADMIN_API_KEY`. Only this setting turns auth off: no key count, no revocation.
   */
  readonly authMode: 'keys' | 'open';
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Every environment variable {@link loadSettings} reads (for docs and manifest checks). */
export const SETTING_NAMES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

/** Settings whose value is a credential: never echoed in an error. */
const SECRET_SETTING_RE = /PASSWORD|SECRET|_KEY|TOKEN|TOTP/;

/**
 * ` (got "…")` for a setting's error line: the value as given, so a typo is visible — never a
 * credential's value, and a URL's password replaced by `***`; long values are cut at 80 characters.
 */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return '';
  if (SECRET_SETTING_RE.test(name) && !/_(URL|MS|SECONDS|BYTES)$/.test(name)) return ' (the value is not shown: it is a credential)';
  let shown = value;
  if (name.endsWith('_URL')) {
    try {
      const url = new URL(value);
      if (url.password !== '') url.password = '***';
      shown = url.href;
    } catch {
      shown = value.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
    }
  }
  return ` (got ${JSON.stringify(shown.length > 80 ? `${shown.slice(0, 80)}…` : shown)})`;
}

/**
 * Parse settings from an environment. Empty strings count as unset.
 *
 * @throws ScenecacheError `invalid_settings` listing every bad variable and why.
 */
export function loadSettings(env: Readonly<Record<string, string | undefined>> = process.env): Settings {
  const relevant: Record<string, string> = {};
  for (const name of SETTING_NAMES) {
    const v = env[name];
    if (v !== undefined && v !== '') relevant[name] = v;
  }
  const parsed = envSchema.safeParse(relevant);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}${shownValue(String(i.path[0]), relevant[String(i.path[0])])}`);
    throw new ScenecacheError('invalid_settings', `invalid settings:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.AUTH_MODE === 'open' && e.ADMIN_API_KEY !== undefined) {
    throw new ScenecacheError('invalid_settings', 'invalid settings:\n  AUTH_MODE=open checks no key: unset ADMIN_API_KEY, or set AUTH_MODE=keys');
  }
  if ((e.CDSE_USERNAME === undefined) !== (e.CDSE_PASSWORD === undefined)) {
    throw new ScenecacheError('invalid_settings', 'invalid settings:\n  CDSE_USERNAME and CDSE_PASSWORD must be set together');
  }
  const nonAws = e.S3_ENDPOINT === undefined || !/amazonaws\.com/.test(e.S3_ENDPOINT);
  const checksum = nonAws ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  return Object.freeze({
    databaseUrl: e.DATABASE_URL,
    lockDatabaseUrl: e.LOCK_DATABASE_URL ?? e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    s3Endpoint: e.S3_ENDPOINT,
    s3Region: e.S3_REGION,
    s3AccessKeyId: e.S3_ACCESS_KEY_ID,
    s3SecretAccessKey: e.S3_SECRET_ACCESS_KEY,
    s3ForcePathStyle: e.S3_FORCE_PATH_STYLE ?? nonAws,
    s3RequestChecksumCalculation: e.S3_REQUEST_CHECKSUM_CALCULATION ?? checksum,
    s3ResponseChecksumValidation: e.S3_RESPONSE_CHECKSUM_VALIDATION ?? checksum,
    embeddedS3Port: e.EMBEDDED_S3_PORT,
    embeddedS3Dir: e.EMBEDDED_S3_DIR,
    globalBucket: e.GLOBAL_BUCKET,
    tenantBucketPrefix: e.TENANT_BUCKET_PREFIX,
    cdseTokenUrl: e.CDSE_TOKEN_URL,
    cdseCatalogueUrl: e.CDSE_CATALOGUE_URL.replace(/\/+$/, ''),
    cdseDownloadUrl: e.CDSE_DOWNLOAD_URL.replace(/\/+$/, ''),
    cdseUsername: e.CDSE_USERNAME,
    cdsePassword: e.CDSE_PASSWORD,
    cdseTotp: e.CDSE_TOTP,
    upstreamConcurrency: e.UPSTREAM_CONCURRENCY,
    upstreamMonthlyBytes: e.UPSTREAM_MONTHLY_BYTES,
    downloadJobsRetentionDays: e.DOWNLOAD_JOBS_RETENTION_DAYS,
    globalCacheMaxBytes: e.GLOBAL_CACHE_MAX_BYTES,
    cacheUnusedTtlDays: e.CACHE_UNUSED_TTL_DAYS,
    cacheInvalidRetentionDays: e.CACHE_INVALID_RETENTION_DAYS,
    maintenanceIntervalMs: e.MAINTENANCE_INTERVAL_MS,
    workerConcurrency: e.WORKER_CONCURRENCY,
    waiterFallbackDelayMs: e.WAITER_FALLBACK_DELAY_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    jobLockDurationMs: e.JOB_LOCK_DURATION_MS,
    jobStalledIntervalMs: e.JOB_STALLED_INTERVAL_MS,
    jobAttempts: e.JOB_ATTEMPTS,
    jobBackoffMs: e.JOB_BACKOFF_MS,
    requireIdempotencyKey: e.REQUIRE_IDEMPOTENCY_KEY,
    rateLimitMax: e.RATE_LIMIT_MAX,
    rateLimitWindowMs: e.RATE_LIMIT_WINDOW_MS,
    productNotFoundTtlSeconds: e.PRODUCT_NOT_FOUND_TTL_SECONDS,
    upstreamIntegrityTtlSeconds: e.UPSTREAM_INTEGRITY_TTL_SECONDS,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    databaseQueryTimeoutMs: e.DATABASE_QUERY_TIMEOUT_MS,
    dependencyLivenessTimeoutMs: e.DEPENDENCY_LIVENESS_TIMEOUT_MS,
    failpoints: Object.freeze(
      Object.fromEntries((e.FAILPOINTS ?? '').split(',').filter(Boolean).map((pair) => pair.split('=') as [string, FailpointAction])),
    ),
    apiPort: e.API_PORT,
    apiHost: e.API_HOST,
    workerMetricsPort: e.WORKER_METRICS_PORT,
    workerMetricsPortSet: relevant.WORKER_METRICS_PORT !== undefined,
    adminApiKey: e.ADMIN_API_KEY,
    callbackSigningSecret: e.CALLBACK_SIGNING_SECRET,
    callbackAllowHttpLoopback: e.CALLBACK_ALLOW_HTTP_LOOPBACK,
    callbackMaxAttempts: e.CALLBACK_MAX_ATTEMPTS,
    callbackBackoffMs: e.CALLBACK_BACKOFF_MS,
    callbackTimeoutMs: e.CALLBACK_TIMEOUT_MS,
    callbackConcurrency: e.CALLBACK_CONCURRENCY,
    stacSignedUrlTtlSeconds: e.STAC_SIGNED_URL_TTL_SECONDS,
    authMode: e.AUTH_MODE,
    logLevel: e.LOG_LEVEL,
  });
}
