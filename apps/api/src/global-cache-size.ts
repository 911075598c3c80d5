/**
 * The global cache's registered size for the `scenecache_global_cache_bytes` gauge, read at every
 * scrape: only `SUM(total_bytes)` over `global_scene_cache`. `getCacheUsage` (@scenecache/db, used
 * by `GET /v1/cache/usage`) also counts the band objects of every row (it parses each row's `bands`
 * JSON) and finds the oldest last use: about 4 times the cost — 185 ms against 42 ms on 100,000
 * products — too much to pay at every scrape of every API replica.
 *
 * TODO(db): this belongs in packages/db's cache-lifecycle.repository.ts (owned by another change);
 * move it there as a repository function and import it from @scenecache/db.
 */
import type { Kysely } from 'kysely';
import type { DB } from '@scenecache/db';

/**
 * Bytes the `global_scene_cache` rows register, valid and invalid (what `GLOBAL_CACHE_MAX_BYTES`
 * limits; equal to `getCacheUsage(db).bytes`). One aggregate statement, no JSON parsed.
 *
 * @returns bytes (0 for an empty cache).
 * @throws pg errors.
 */
export async function registeredCacheBytes(db: Kysely<DB>): Promise<number> {
  // The expression builder, not kysely's `sql` tag: apps/api loads no kysely code of its own at run time.
  const row = await db
    .selectFrom('global_scene_cache')
    .select((eb) => eb.fn.coalesce(eb.fn.sum<string>('total_bytes'), eb.lit(0)).as('bytes'))
    .executeTakeFirstOrThrow();
  return Number(row.bytes);
}
