/**
 * The global cache: the `global_scene_cache` table and the global bucket together, owned by this
 * one module. Everything that reads what the cache serves, decides whether a stored object may be
 * adopted, registers a band, or removes a product's objects goes through here, so the rules that
 * keep the table and the bucket in step live in one place:
 *
 * - **Served**: a band is served when the product's row is valid, lists the band, and a HEAD finds
 *   its object with the registered size. An object found missing or truncated has its entry
 *   dropped (only while the entry is unchanged: a band registered again meanwhile is kept).
 * - **Object metadata**: every object this module's callers upload carries `sha3-256` (the
 *   manifest's, verified while streaming), `upload-id` (random per upload) and `job-id` (the job
 *   that streamed it). A registered entry records the same `upload_id`.
 * - **Adoption**: an object at a band's key that is whole (size) and verified (`sha3-256` equal to
 *   the manifest's) is adopted instead of downloaded again — a worker killed, cancelled or cut off
 *   from Postgres between "stored" and "registered" costs no second download. Objects an
 *   invalidated row describes are never adopted: before any band of an invalidated product is
 *   downloaded, the product is reset ({@link GlobalCache.resetInvalidated}, under the scene lock
 *   held exclusive), which deletes every object the row describes (the object at a band's key
 *   whose `upload-id` is the entry's, or any object at the key of an entry without one). An
 *   object the row never described — a verified upload whose registration was refused because the
 *   row had just been invalidated, or one left by a killed worker — is kept, and adopted.
 * - **Registration** ({@link GlobalCache.registerBand}, under the band's lock) merges one band into
 *   a valid row (or creates the row) in one transaction. If the row was invalidated while the band
 *   was streaming (plain SQL, or the admin API, which does not wait for downloads), nothing is
 *   written: the caller runs again, and its next run resets the product first.
 * - **Admin** (global-cache-admin.ts, `GlobalCacheAdmin`, used by the admin API): invalidate whole
 *   products (the row only: the next job resets the product) or some bands (their objects deleted,
 *   then their entries dropped), and clean up invalid rows with every object under their prefix,
 *   skipping a product whose scene lock a job holds.
 *
 * Tenant copies are not this module's: they live in tenant buckets and are never touched here.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { sceneStoragePath, type Band, type Logger, type SafeFile, type SentinelProduct } from '@scenecache/core';
import { findScene, registerBands, removeBandEntries, type CachedBand, type DB, type SceneCacheRow } from '@scenecache/db';
import type { Kysely } from 'kysely';
import type { ObjectStore } from '@scenecache/storage';

/** Object metadata key (x-amz-meta-sha3-256) holding the verified SHA3-256 of a global object (and of its tenant copies). */
export const SHA3_METADATA_KEY = 'sha3-256';
/** Object metadata key of the random id of the upload that stored a global object. */
export const UPLOAD_ID_METADATA_KEY = 'upload-id';
/** Object metadata key of the job that streamed a global object from upstream. */
export const JOB_ID_METADATA_KEY = 'job-id';

/** What the cache serves of some bands of one product (see {@link GlobalCache.read}). */
export interface CacheRead {
  /** Bands served, by band id. */
  readonly cached: ReadonlyMap<string, CachedBand>;
  /** Bands to fetch from upstream, in request order. */
  readonly missing: readonly Band[];
  /** The product's row exists and is invalidated: it must be reset before any band is downloaded. */
  readonly invalidated: boolean;
}

/** A verified object found at a band's key (see {@link GlobalCache.findAdoptable}). */
export interface AdoptableObject {
  etag: string;
  /** The job that streamed it from upstream (`undefined` when not recorded). */
  jobId: string | undefined;
}

/** Input of {@link GlobalCache.registerBand}: one band just stored and verified (or adopted). */
export interface RegisterBandInput {
  product: SentinelProduct;
  /** OData product Id (kept on the row). */
  cdseProductId: string;
  bandId: string;
  entry: CachedBand;
}

/** Options of {@link GlobalCache}. */
export interface GlobalCacheOptions {
  db: Kysely<DB>;
  store: ObjectStore;
  /** The global bucket. */
  bucket: string;
  logger: Logger;
}

/** The object key of a band file in the global bucket: the product's prefix (`sceneStoragePath`) and the file's name in the SAFE. */
export function bandObjectKey(product: SentinelProduct, file: Pick<SafeFile, 'path'>): string {
  return `${sceneStoragePath(product)}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`;
}

/** The metadata a band object is uploaded with (see the module's doc). */
export function bandObjectMetadata(file: Pick<SafeFile, 'sha3_256'>, jobId: string): { uploadId: string; metadata: Record<string, string> } {
  const uploadId = randomUUID();
  return { uploadId, metadata: { [SHA3_METADATA_KEY]: file.sha3_256, [UPLOAD_ID_METADATA_KEY]: uploadId, [JOB_ID_METADATA_KEY]: jobId } };
}

/**
 * Every object key of a product's row in its bucket: its bands' keys (present or not) and whatever
 * else is under `<storage_path>/` (objects no entry describes any more), without duplicates.
 *
 * @throws ScenecacheError `storage_error` when S3 fails.
 */
export async function productObjectKeys(store: ObjectStore, row: Pick<SceneCacheRow, 'storage_bucket' | 'storage_path' | 'bands'>): Promise<string[]> {
  const listed = await store.listKeys(row.storage_bucket, `${row.storage_path}/`);
  return [...new Set([...listed, ...Object.values(row.bands).map((b) => b.key)])];
}

/** The global cache of one worker process (the admin side is `GlobalCacheAdmin`, global-cache-admin.ts). */
export class GlobalCache {
  readonly bucket: string;
  private readonly db: Kysely<DB>;
  private readonly store: ObjectStore;
  private readonly logger: Logger;

  constructor(options: GlobalCacheOptions) {
    this.db = options.db;
    this.store = options.store;
    this.bucket = options.bucket;
    this.logger = options.logger;
  }

  /**
   * Which of `bands` the cache serves for `sceneId`: row valid, band listed, object there with
   * the registered size (one HEAD per listed band, in parallel). Entries whose object is missing
   * or truncated are dropped from the row (if still unchanged), so the band is downloaded again.
   *
   * @throws ScenecacheError `storage_error` when S3 fails (not when an object is absent); pg
   *   errors when Postgres does.
   */
  async read(sceneId: string, bands: readonly Band[], log: Logger = this.logger): Promise<CacheRead> {
    const row = await findScene(this.db, sceneId);
    const cached = new Map<string, CachedBand>();
    const broken: Record<string, CachedBand> = {};
    if (row?.is_valid) {
      await Promise.all(
        bands.map(async (band) => {
          const entry = row.bands[band.id];
          if (!entry) return;
          const head = await this.store.headObject(row.storage_bucket, entry.key);
          if (head && head.size === entry.size) cached.set(band.id, entry);
          else broken[band.id] = entry;
        }),
      );
    }
    const dropped = Object.keys(broken).length > 0 ? await removeBandEntries(this.db, sceneId, broken) : [];
    if (dropped.length > 0) log.warn({ bands: dropped }, 'cached bands missing or truncated in the global bucket; entries dropped');
    return { cached, missing: bands.filter((b) => !cached.has(b.id)), invalidated: row !== undefined && !row.is_valid };
  }

  /**
   * A whole, verified object already at `key` (size and `sha3-256` metadata equal to the
   * manifest's `file`), which the caller may register instead of downloading the file again.
   * Only meaningful while the caller holds the band's lock and the product is not invalidated
   * (see the module's doc).
   *
   * @throws ScenecacheError `storage_error` when S3 fails.
   */
  async findAdoptable(key: string, file: Pick<SafeFile, 'size' | 'sha3_256'>): Promise<AdoptableObject | undefined> {
    const head = await this.store.headObject(this.bucket, key);
    if (!head || head.size !== file.size || head.metadata[SHA3_METADATA_KEY]?.toLowerCase() !== file.sha3_256.toLowerCase()) return undefined;
    return { etag: head.etag, jobId: head.metadata[JOB_ID_METADATA_KEY] };
  }

  /**
   * Reset an invalidated product so it can be downloaded again: delete every object the row
   * describes (see the module's doc: objects uploaded after it are kept for adoption), then make
   * the row valid with no bands (`download_count` and `last_accessed_at` kept). The caller holds
   * the product's scene lock exclusive, so no band of it is being downloaded. A row that is valid
   * (reset by another job meanwhile) or absent is left alone.
   *
   * @returns the number of objects deleted.
   * @throws ScenecacheError `storage_error` when S3 fails (the row stays invalid: try again).
   */
  async resetInvalidated(sceneId: string, log: Logger = this.logger): Promise<number> {
    const row = await findScene(this.db, sceneId);
    if (!row || row.is_valid) return 0;
    const deleted = await Promise.all(
      Object.values(row.bands).map(async (entry) => {
        const head = await this.store.headObject(row.storage_bucket, entry.key);
        if (!head) return 0;
        if (entry.upload_id !== undefined && head.metadata[UPLOAD_ID_METADATA_KEY] !== entry.upload_id) return 0;
        await this.store.deleteObject(row.storage_bucket, entry.key);
        return 1;
      }),
    );
    const objectsDeleted = deleted.reduce<number>((sum, n) => sum + n, 0);
    await this.db
      .updateTable('global_scene_cache')
      .set({ bands: '{}', total_bytes: 0, is_valid: true, updated_at: sql`now()` })
      .where('scene_id', '=', sceneId)
      .where('is_valid', '=', false)
      .execute();
    log.info({ objectsDeleted }, 'invalidated product reset: the objects it described deleted, the row emptied for a fresh download');
    return objectsDeleted;
  }

  /**
   * Register one band whose object is whole and verified in the global bucket (the caller holds
   * the band's lock): merge it into the product's row, or create the row, in one transaction
   * that reads the row `FOR UPDATE` first. If the row was invalidated meanwhile nothing is
   * written and `invalidated` is returned: the caller runs again (its next run resets the product).
   *
   * @throws pg errors when Postgres fails.
   */
  async registerBand(input: RegisterBandInput): Promise<'registered' | 'invalidated'> {
    const { product } = input;
    return this.db.transaction().execute(async (trx) => {
      const old = await trx.selectFrom('global_scene_cache').select('is_valid').where('scene_id', '=', product.sceneId).forUpdate().executeTakeFirst();
      if (old && !old.is_valid) return 'invalidated' as const;
      await registerBands(trx, {
        sceneId: product.sceneId,
        storageBucket: this.bucket,
        storagePath: sceneStoragePath(product),
        sensingDate: product.sensingDate,
        level: product.level,
        tile: product.tile,
        mission: product.mission,
        cdseProductId: input.cdseProductId,
        bands: { [input.bandId]: input.entry },
      });
      return 'registered' as const;
    });
  }
}
