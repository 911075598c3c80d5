/**
 * @scenecache/db — Postgres access: Kysely table types, the pool, repositories, the migration
 * runner and database administration (create/drop, used by `npm run migrate` and tests).
 *
 * Glossary:
 * - cache row: the `global_scene_cache` row of a scene; a band is cached when it is listed in the
 *   row's `bands` and the row is valid (`is_valid = true`).
 * - invalid row: a scene an admin invalidated; its next registration replaces its bands.
 * - Queryable: `Kysely<DB>` or an open `Transaction<DB>`; every repository function takes one.
 */
export * from './schema.js';
export * from './database.js';
export * from './database-admin.js';
export * from './migrate.js';
export * from './template-database.js';
export * from './scene-cache.repository.js';
export * from './tenant-scene.repository.js';
export * from './advisory-lock.js';
export * from './download-job.repository.js';
export * from './job-retention.js';
export * from './history-seed.js';
export * from './cache-stats.repository.js';
export * from './api-key.repository.js';
export * from './cache-admin.repository.js';
export * from './upstream-product.repository.js';
export * from './upstream-transfer.repository.js';
export * from './cache-lifecycle.repository.js';
export * from './stac-items.repository.js';
