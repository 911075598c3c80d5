/**
 * The three tables of DESIGN.md. `global_scene_cache` keeps the seed's columns and meaning so the
 * seed's monitoring SQL runs verbatim.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE EXTENSION IF NOT EXISTS pgcrypto`.execute(db);

  await db.schema
    .createTable('global_scene_cache')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('scene_id', 'text', (c) => c.notNull().unique())
    .addColumn('storage_path', 'text', (c) => c.notNull())
    .addColumn('storage_bucket', 'text', (c) => c.notNull())
    .addColumn('bands', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('download_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_accessed_at', 'timestamptz')
    .addColumn('is_valid', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('sensing_date', 'date', (c) => c.notNull())
    .addColumn('cloud_coverage', 'real')
    .addColumn('product_level', 'text', (c) => c.notNull().check(sql`product_level IN ('L1C', 'L2A')`))
    .addColumn('tile', 'text', (c) => c.notNull())
    .addColumn('mission', 'text', (c) => c.notNull())
    .addColumn('cdse_product_id', 'text')
    .addColumn('total_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // The seed invalidates with a bare `UPDATE … SET is_valid = false`; stamp updated_at on that
  // change so the seed's "invalid and older than 30 days" cleanup counts from the invalidation.
  await sql`CREATE FUNCTION scene_cache_touch_on_validity() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN NEW.updated_at := now(); RETURN NEW; END $$`.execute(db);
  await sql`CREATE TRIGGER global_scene_cache_validity_touch BEFORE UPDATE OF is_valid ON global_scene_cache
    FOR EACH ROW WHEN (OLD.is_valid IS DISTINCT FROM NEW.is_valid) EXECUTE FUNCTION scene_cache_touch_on_validity()`.execute(db);
  await db.schema.createIndex('global_scene_cache_download_count_idx').on('global_scene_cache').columns(['download_count desc']).where(sql.ref('is_valid'), '=', true).execute();
  await db.schema.createIndex('global_scene_cache_invalid_updated_idx').on('global_scene_cache').column('updated_at').where(sql.ref('is_valid'), '=', false).execute();
  await db.schema.createIndex('global_scene_cache_tile_date_idx').on('global_scene_cache').columns(['tile', 'sensing_date']).execute();

  await db.schema
    .createTable('tenant_scenes')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('scene_id', 'text', (c) => c.notNull())
    .addColumn('bucket', 'text', (c) => c.notNull())
    .addColumn('bands', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('tenant_scenes_tenant_scene_key', ['tenant_id', 'scene_id'])
    .execute();
  await db.schema.createIndex('tenant_scenes_scene_idx').on('tenant_scenes').column('scene_id').execute();

  await db.schema
    .createTable('download_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('scene_id', 'text', (c) => c.notNull())
    .addColumn('bands_requested', sql`text[]`, (c) => c.notNull())
    .addColumn('priority', 'integer')
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued').check(sql`status IN ('queued', 'active', 'completed', 'failed')`))
    .addColumn('cache_status', 'text', (c) => c.check(sql`cache_status IN ('reused', 'downloaded')`))
    .addColumn('bands_downloaded', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('bands_reused', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('bytes_downloaded', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bytes_copied', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('objects', 'jsonb')
    .addColumn('message', 'text')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('waits', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error_code', 'text')
    .addColumn('error_message', 'text')
    .addColumn('idempotency_key', 'text')
    .addColumn('enqueued_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('duration_ms', 'integer')
    .addColumn('worker_id', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // "a tenant's recent jobs", "by status", "by day" (range scans on enqueued_at), idempotency.
  await db.schema.createIndex('download_jobs_tenant_recent_idx').on('download_jobs').columns(['tenant_id', 'enqueued_at desc', 'id']).execute();
  await db.schema.createIndex('download_jobs_status_idx').on('download_jobs').columns(['status', 'enqueued_at desc']).execute();
  await db.schema.createIndex('download_jobs_enqueued_idx').on('download_jobs').columns(['enqueued_at desc', 'id']).execute();
  await db.schema.createIndex('download_jobs_scene_idx').on('download_jobs').column('scene_id').execute();
  await db.schema
    .createIndex('download_jobs_idempotency_key')
    .on('download_jobs')
    .columns(['tenant_id', 'idempotency_key'])
    .unique()
    .where(sql.ref('idempotency_key'), 'is not', null)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('download_jobs').execute();
  await db.schema.dropTable('tenant_scenes').execute();
  await db.schema.dropTable('global_scene_cache').execute();
  await sql`DROP FUNCTION IF EXISTS scene_cache_touch_on_validity()`.execute(db);
}
