/**
 * What the STAC API (issues 16 and 19) needs of a product, stored beside its manifest in
 * `upstream_products` by the job that registers the product (read once per product):
 *
 * - `footprint`: the OData `GeoFootprint` (a GeoJSON geometry, WGS84) — the item's geometry;
 * - `bbox_west`/`bbox_south`/`bbox_east`/`bbox_north`: its bounding box in degrees, indexed
 *   (GiST on the `box`) for the item search's `bbox` filter (`&&`, overlap);
 * - `sensed_at`: the OData `ContentDate.Start` — the item's `datetime`, indexed for the search's
 *   `datetime` filter;
 * - `granule_metadata`: what `MTD_TL.xml` and `MTD_MSIL1C.xml`/`MTD_MSIL2A.xml` say (grid of each
 *   resolution, EPSG, sun angles, cloud cover, processing baseline; `GranuleMetadata` in core).
 *
 * All nullable: rows stored before this migration lack them until a job prepares the product
 * again (the worker does that once, under the scene lock, like a first registration).
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('upstream_products')
    .addColumn('footprint', 'jsonb')
    .addColumn('bbox_west', 'float8')
    .addColumn('bbox_south', 'float8')
    .addColumn('bbox_east', 'float8')
    .addColumn('bbox_north', 'float8')
    .addColumn('sensed_at', 'timestamptz')
    .addColumn('granule_metadata', 'jsonb')
    .execute();
  await sql`CREATE INDEX upstream_products_bbox_idx ON upstream_products USING gist (box(point(bbox_west, bbox_south), point(bbox_east, bbox_north))) WHERE bbox_west IS NOT NULL`.execute(db);
  await db.schema.createIndex('upstream_products_sensed_at_idx').on('upstream_products').columns(['sensed_at', 'scene_id']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('upstream_products_sensed_at_idx').execute();
  await db.schema.dropIndex('upstream_products_bbox_idx').execute();
  await db.schema
    .alterTable('upstream_products')
    .dropColumn('granule_metadata')
    .dropColumn('sensed_at')
    .dropColumn('bbox_north')
    .dropColumn('bbox_east')
    .dropColumn('bbox_south')
    .dropColumn('bbox_west')
    .dropColumn('footprint')
    .execute();
}
