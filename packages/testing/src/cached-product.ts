/**
 * Cached products for tests of the cache's life cycle: a row registered as the worker registers
 * one (`registerBands`) with real objects in the global bucket, and its last use set by SQL.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { sql, type Kysely } from 'kysely';
import { parseProductName, sceneStoragePath } from '@scenecache/core';
import { registerBands, type CachedBand, type DB } from '@scenecache/db';

/** MGRS 100 km row letters (no I, O): the last letter of {@link testProductName}'s tile. */
const ROW_LETTERS = 'ABCDEFGHJKLMNPQRSTUV';

/** A valid, distinct Sentinel-2 L2A product name per index `i` (0…399): the tile differs. */
export function testProductName(i: number): string {
  const zone = 10 + Math.floor(i / ROW_LETTERS.length);
  return `S2B_MSIL2A_20240324T101649_N0510_R065_T${zone}TN${ROW_LETTERS[i % ROW_LETTERS.length]}_20240324T130035`;
}

/** Options of {@link seedCachedProduct}. */
export interface SeedCachedProductOptions {
  db: Kysely<DB>;
  client: S3Client;
  /** The global bucket (must exist). */
  bucket: string;
  sceneId: string;
  /** Band objects, `B02`, `B03`, `B04`, `B08` in that order. @defaultValue 2 */
  bands?: number;
  /** Bytes of each object (and its entry's size). @defaultValue 100 */
  bodyBytes?: number;
  /** Days since its last use (creation and last change set to then). @defaultValue 0 */
  lastUsedDaysAgo?: number;
  /** A cache hit this many days ago (the row itself created 400 days ago). */
  accessedDaysAgo?: number;
  /** Invalidated (the seed's `UPDATE … SET is_valid = false`) this many days ago. */
  invalidDaysAgo?: number;
}

/**
 * Put the band objects in the bucket, register them, and date the row.
 * @returns band id → entry as registered.
 */
export async function seedCachedProduct(options: SeedCachedProductOptions): Promise<Record<string, CachedBand>> {
  const { db, sceneId } = options;
  const p = parseProductName(sceneId);
  const path = sceneStoragePath(p);
  const size = options.bodyBytes ?? 100;
  const bands: Record<string, CachedBand> = {};
  for (const band of ['B02', 'B03', 'B04', 'B08'].slice(0, options.bands ?? 2)) {
    const key = `${path}/${p.tile}_${band}_10m.jp2`;
    await options.client.send(new PutObjectCommand({ Bucket: options.bucket, Key: key, Body: Buffer.alloc(size, 7) }));
    bands[band] = { key, size, sha3_256: 'ab'.repeat(32), etag: 'e', safe_path: key, registered_at: new Date().toISOString() };
  }
  await registerBands(db, { sceneId, storageBucket: options.bucket, storagePath: path, sensingDate: p.sensingDate, level: p.level, tile: p.tile, mission: p.mission, cdseProductId: null, bands });
  const at = sql`now() - make_interval(days => ${options.lastUsedDaysAgo ?? 0})`;
  await sql`UPDATE global_scene_cache SET created_at = ${at}, updated_at = ${at} WHERE scene_id = ${sceneId}`.execute(db);
  if (options.accessedDaysAgo !== undefined) {
    await sql`UPDATE global_scene_cache SET created_at = now() - interval '400 days', updated_at = now() - interval '400 days',
      last_accessed_at = now() - make_interval(days => ${options.accessedDaysAgo}) WHERE scene_id = ${sceneId}`.execute(db);
  }
  if (options.invalidDaysAgo !== undefined) {
    await sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id = ${sceneId}`.execute(db);
    await sql`UPDATE global_scene_cache SET updated_at = now() - make_interval(days => ${options.invalidDaysAgo}) WHERE scene_id = ${sceneId}`.execute(db);
  }
  return bands;
}
