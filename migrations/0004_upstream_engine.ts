/**
 * The per-file download engine (issue 11):
 *
 * - `upstream_products`: what CDSE said about a product, read once per product by whichever job
 *   first needs it and reused by every later job: the OData catalogue entry (`product`, with
 *   `Id`, `ContentLength`, `ContentDate`, …) and every file of its `manifest.safe` (`files`: path,
 *   byte size, SHA3-256). A product name identifies one processing of one datatake, so neither
 *   changes; the row goes with the product's cache row when the cleanup deletes it.
 * - `upstream_transfers`: one row per file download started against the account (bytes = the
 *   file's size from the manifest), the rolling 30-day window that `UPSTREAM_MONTHLY_BYTES` is
 *   checked against (CDSE: 12 TB per 30 days per account). Indexed by time for the window's sum.
 * - `download_jobs.waiting_for`: what a delayed job waits for (`band_download`, `upstream_slot`,
 *   `upstream_budget`, `product_preparation`), null once it runs again or ends.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('upstream_products')
    .addColumn('scene_id', 'text', (c) => c.primaryKey())
    .addColumn('cdse_product_id', 'text', (c) => c.notNull())
    .addColumn('product', 'jsonb', (c) => c.notNull())
    .addColumn('files', 'jsonb', (c) => c.notNull())
    .addColumn('fetched_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`COMMENT ON TABLE upstream_products IS 'scenecache: CDSE catalogue entry and manifest.safe files of a product, fetched once per product'`.execute(db);
  await db.schema
    .createTable('upstream_transfers')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('scene_id', 'text', (c) => c.notNull())
    .addColumn('band', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.notNull())
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('bytes', 'bigint', (c) => c.notNull().check(sql`bytes >= 0`))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('upstream_transfers_started_at_idx').on('upstream_transfers').columns(['started_at', 'bytes']).execute();
  await sql`COMMENT ON TABLE upstream_transfers IS 'scenecache: file downloads started against the CDSE account (rolling 30-day transfer budget)'`.execute(db);
  await db.schema.alterTable('download_jobs').addColumn('waiting_for', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('download_jobs').dropColumn('waiting_for').execute();
  await db.schema.dropTable('upstream_transfers').ifExists().execute();
  await db.schema.dropTable('upstream_products').ifExists().execute();
}
