/**
 * What the cache's scheduled maintenance reads (@scenecache/global-cache, cache-maintenance.ts):
 *
 * - `global_scene_cache_last_used_idx`: valid rows by when they were last used —
 *   `GREATEST(created_at, updated_at, last_accessed_at)`: the latest of the row's creation, the
 *   last change of its bands (a job registering a band), and the last job served from it — for the
 *   least-recently-used eviction and the unused-products expiry, read in that order page by page.
 * - `global_scene_cache_storage_path_idx`: rows by their key prefix, for the reconciliation of the
 *   bucket listing with the table.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX global_scene_cache_last_used_idx ON global_scene_cache ((GREATEST(created_at, updated_at, last_accessed_at)), scene_id) WHERE is_valid`.execute(db);
  await db.schema.createIndex('global_scene_cache_storage_path_idx').on('global_scene_cache').columns(['storage_bucket', 'storage_path']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('global_scene_cache_storage_path_idx').execute();
  await db.schema.dropIndex('global_scene_cache_last_used_idx').execute();
}
