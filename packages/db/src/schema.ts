/**
 * Kysely table types of the scenecache schema (created by migrations/). Column meanings follow
 * DESIGN.md "Data model"; `global_scene_cache` keeps the seed's columns so its SQL runs verbatim.
 * int8 columns are parsed as JS numbers (byte counts stay below 2^53).
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { CallbackState, GranuleMetadata, JobStatus, SafeFile } from '@scenecache/core';

type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

/** One cached band in `global_scene_cache.bands` (band id → entry). */
export interface CachedBand {
  /** Object key in the global bucket. */
  key: string;
  /** Size in bytes (= the manifest's). */
  size: number;
  /** SHA3-256 of the object, lower-case hex (= the manifest's, verified on download). */
  sha3_256: string;
  /** ETag the store returned (multipart ETags are not content hashes: never compare them to one). */
  etag: string;
  /** Path of the file inside the SAFE. */
  safe_path: string;
  /** When the band was registered (ISO 8601). */
  registered_at: string;
  /** The job whose download registered the band (absent in rows written before it was recorded). */
  job_id?: string;
  /**
   * Random id of the upload that stored the object (also its `upload-id` metadata; absent in
   * rows written before it was recorded). Tells the object this entry describes from a later
   * upload to the same key.
   */
  upload_id?: string;
  /** Bytes the registering job fetched from upstream for it (0: it adopted an object another job stored). */
  downloaded_bytes?: number;
}

export interface GlobalSceneCacheTable {
  id: Generated<string>;
  scene_id: string;
  storage_path: string;
  storage_bucket: string;
  bands: ColumnType<Record<string, CachedBand>, string | undefined, string>;
  /** The seed's reuse counter: +1 each time a job is served from the cache. */
  download_count: Generated<number>;
  last_accessed_at: NullableTimestamp;
  is_valid: Generated<boolean>;
  sensing_date: ColumnType<string, string, string>;
  cloud_coverage: number | null;
  product_level: string;
  tile: string;
  mission: string;
  /** CDSE OData product Id. */
  cdse_product_id: string | null;
  /** Sum of the cached bands' sizes (bytes). */
  total_bytes: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface TenantScenesTable {
  id: Generated<string>;
  tenant_id: string;
  scene_id: string;
  bucket: string;
  /** band id → object key in the tenant bucket. */
  bands: ColumnType<Record<string, string>, string | undefined, string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** `queued|active|completed|failed|cancelled` (`cancelled` since migration 0009). */
export type JobStatusColumn = JobStatus;
/** `download_jobs.callback_state` (migration 0009): null until the job ends. */
export type CallbackStateColumn = CallbackState;
export type CacheStatusColumn = 'reused' | 'downloaded';

export interface DownloadJobsTable {
  /** = the BullMQ job id. */
  id: string;
  tenant_id: string;
  scene_id: string;
  /** Canonical band ids requested. */
  bands_requested: string[];
  priority: number | null;
  status: Generated<JobStatusColumn>;
  cache_status: CacheStatusColumn | null;
  bands_downloaded: Generated<string[]>;
  bands_reused: Generated<string[]>;
  bytes_downloaded: Generated<number>;
  bytes_copied: Generated<number>;
  /** band → `s3://bucket/key` of the tenant copy. */
  objects: ColumnType<Record<string, string> | null, string | null | undefined, string | null>;
  message: string | null;
  attempts: Generated<number>;
  /** How many times the job got out of the way (delayed) waiting for a lock or an upstream slot. */
  waits: Generated<number>;
  /** What the delayed job waits for (`band_download`, `upstream_slot`, `upstream_budget`, `product_preparation`); null while it runs or once it ended (migration 0004). */
  waiting_for: ColumnType<string | null, string | null | undefined, string | null>;
  error_code: string | null;
  error_message: string | null;
  idempotency_key: string | null;
  enqueued_at: Generated<Date>;
  started_at: NullableTimestamp;
  finished_at: NullableTimestamp;
  duration_ms: number | null;
  worker_id: string | null;
  updated_at: Generated<Date>;
  /** When a cancel was asked (`DELETE /v1/downloads/{id}`); an active job stops at its next step (migration 0009). */
  cancel_requested_at: NullableTimestamp;
  /** When the job was cancelled (status `cancelled`). */
  cancelled_at: NullableTimestamp;
  /** Where the job's view is POSTed once it ends (validated by the API); null: no callback. */
  callback_url: ColumnType<string | null, string | null | undefined, string | null>;
  /** The `api_keys` row whose `callback_secret` signs the callback; null: `CALLBACK_SIGNING_SECRET` (ADMIN_API_KEY, open mode). */
  callback_key_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** null until the job ends; then `pending` → `delivered` | `failed`. */
  callback_state: ColumnType<CallbackStateColumn | null, CallbackStateColumn | null | undefined, CallbackStateColumn | null>;
  /** Delivery attempts made. */
  callback_attempts: Generated<number>;
  /** HTTP status of the last attempt; null before one, or when it got no answer. */
  callback_last_status: ColumnType<number | null, number | null | undefined, number | null>;
  /** Why the last attempt failed; null once delivered. */
  callback_last_error: ColumnType<string | null, string | null | undefined, string | null>;
  callback_delivered_at: NullableTimestamp;
}

/** The figures of a period (a day, a tenant's period, the whole period): counts are jobs, the rest bytes. */
export interface CacheStatsFigures {
  /** Completed jobs. */
  requests: number;
  /** Completed jobs served from the cache (`cache_status = 'reused'`). */
  reused: number;
  /** Completed jobs that fetched bytes upstream (`cache_status = 'downloaded'`). */
  downloaded: number;
  /** Jobs that failed for good. */
  failed: number;
  /** Jobs cancelled (`DELETE /v1/downloads/{id}`; migration 0009). */
  cancelled: number;
  /** reused / requests, 0…1; `null` when no job completed. */
  hit_ratio: number | null;
  /** Bytes fetched from upstream (CDSE) by completed jobs. */
  bytes_downloaded: number;
  /** Bytes copied into tenant buckets by completed jobs (sum of `bytes_copied`). */
  bytes_delivered: number;
  /** bytes_delivered − bytes_downloaded: what the cache spared upstream. */
  bytes_saved: number;
}

/** A row of the `cache_daily_stats` view (migration 0002): jobs that finished on one UTC day. Read-only. */
export interface CacheDailyStatsView extends CacheStatsFigures {
  /** UTC day of `finished_at`, `YYYY-MM-DD`. */
  day: string;
  /** Midnight UTC of `day` (Grafana's time column). */
  day_start: Date;
}

/** A row of the `tenant_daily_stats` view (migration 0002): {@link CacheDailyStatsView} per tenant. */
export interface TenantDailyStatsView extends CacheDailyStatsView {
  tenant_id: string;
}

/**
 * All-time figures of one tenant (`job_tenant_totals`, migration 0006), kept by the rollup
 * triggers on `download_jobs`; the application only reads it. Counts are jobs, the rest bytes.
 */
export interface JobTenantTotalsTable extends Omit<CacheStatsFigures, 'hit_ratio' | 'bytes_saved'> {
  tenant_id: string;
}

/** An API key (migration 0003). The secret is never stored: only its SHA-256. */
export interface ApiKeysTable {
  id: Generated<string>;
  /** Free text, for people. */
  name: string | null;
  /** SHA-256 of the whole secret, lower-case hex. */
  key_hash: string;
  /** The secret's first characters (`sck_` + 8), for display. */
  prefix: string;
  /** The tenant the key acts for; `null` = admin key. */
  tenant_id: string | null;
  created_at: Generated<Date>;
  revoked_at: NullableTimestamp;
  /** Last use, to the minute (bumped at most once a minute). */
  last_used_at: NullableTimestamp;
  /**
   * The key's completion callback signing secret (`whsec_…`, migration 0009), in clear: the
   * workers sign with it. Never selected with the key ({@link ApiKeyRow} omits it): only
   * `findCallbackSecret` reads it. Null for keys made before 0009 until rotated.
   */
  callback_secret: ColumnType<string | null, string | null | undefined, string | null>;
}

/** What CDSE said about a product (migration 0004), read once per product. */
export interface UpstreamProductsTable {
  /** Product name without `.SAFE`. */
  scene_id: string;
  /** OData `Id`: the key of every download URL. */
  cdse_product_id: string;
  /** The OData catalogue entry as CDSE returned it (`Id`, `Name`, `ContentLength`, `ContentDate`, …). */
  product: ColumnType<Record<string, unknown>, string, string>;
  /** Every file of `manifest.safe`: `{path, size, sha3_256}`. */
  files: ColumnType<SafeFile[], string, string>;
  fetched_at: Generated<Date>;
  /** OData `GeoFootprint` (GeoJSON geometry, WGS84); null for rows stored before migration 0008. */
  footprint: ColumnType<GeoJsonGeometry | null, string | null, string | null>;
  /** Bounding box of `footprint` in degrees (GiST-indexed as a `box` for the STAC `bbox` search). */
  bbox_west: number | null;
  bbox_south: number | null;
  bbox_east: number | null;
  bbox_north: number | null;
  /** OData `ContentDate.Start`: the STAC item's `datetime`. */
  sensed_at: Date | null;
  /** What `MTD_TL.xml` and `MTD_MSIL*.xml` say (grids, EPSG, sun angles, cloud cover, baseline). */
  granule_metadata: ColumnType<GranuleMetadata | null, string | null, string | null>;
}

/** A GeoJSON geometry as CDSE's `GeoFootprint` gives it (RFC 7946; Polygon or MultiPolygon). */
export interface GeoJsonGeometry {
  readonly type: string;
  readonly coordinates: unknown;
}

/** One file download started against the CDSE account (migration 0004): the transfer budget's window. */
export interface UpstreamTransfersTable {
  id: Generated<number>;
  scene_id: string;
  band: string;
  tenant_id: string;
  job_id: string;
  /** The file's size (bytes). */
  bytes: number;
  started_at: Generated<Date>;
}

/** The database as Kysely sees it. */
export interface DB {
  global_scene_cache: GlobalSceneCacheTable;
  tenant_scenes: TenantScenesTable;
  download_jobs: DownloadJobsTable;
  /** View (read-only). */
  cache_daily_stats: CacheDailyStatsView;
  /** View (read-only). */
  tenant_daily_stats: TenantDailyStatsView;
  /** Kept by triggers (read-only for the application). */
  job_tenant_totals: JobTenantTotalsTable;
  api_keys: ApiKeysTable;
  upstream_products: UpstreamProductsTable;
  upstream_transfers: UpstreamTransfersTable;
}

export type SceneCacheRow = Selectable<GlobalSceneCacheTable>;
export type NewSceneCacheRow = Insertable<GlobalSceneCacheTable>;
export type SceneCacheUpdate = Updateable<GlobalSceneCacheTable>;
export type TenantSceneRow = Selectable<TenantScenesTable>;
export type DownloadJobRow = Selectable<DownloadJobsTable>;
export type NewDownloadJobRow = Insertable<DownloadJobsTable>;
export type DownloadJobUpdate = Updateable<DownloadJobsTable>;
/** A key as read for authentication and listing: without its callback signing secret. */
export type ApiKeyRow = Omit<Selectable<ApiKeysTable>, 'callback_secret'>;
