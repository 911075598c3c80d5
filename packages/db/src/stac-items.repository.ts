/**
 * The cached products as the STAC API (apps/api/src/stac) shows them: one row per product with the
 * band objects of one view, read by a keyset-paged search over `upstream_products` (where the
 * footprint, bounding box, sensing time and parsed metadata files live, migration 0008) joined to
 * the view's table.
 *
 * Views (DESIGN "internal/external"):
 * - `global`: valid `global_scene_cache` rows, their bands in the global bucket;
 * - `tenant`: the tenant's `tenant_scenes` rows, their bands (band → key) in the tenant's bucket.
 *   Sizes and SHA3-256 come from the global row's band entry while it is valid and lists the band,
 *   else from the product's `manifest.safe` (`upstream_products.files`): the tenant's object is a
 *   copy of the verified global object, so both describe it; a tenant's copies outlive the global
 *   row (eviction, invalidation).
 *
 * A product is listed only once `upstream_products.sensed_at` is known (the item's `datetime`, the
 * search's order and its `datetime` filter): the worker stores it when it prepares a product, and
 * prepares rows stored before migration 0008 again on their next job.
 *
 * Order: `sensed_at` descending, then `scene_id` descending (index `upstream_products_sensed_at_idx`
 * on `(sensed_at, scene_id)`, read backwards); pages continue after the last row's pair (keyset),
 * so a row added or removed between pages never shifts another. `bbox` filters use the GiST index
 * `upstream_products_bbox_idx` (`box(point(w, s), point(e, n)) &&`, overlap, edges included); a
 * footprint split at the antimeridian is matched by the boxes of its parts, not by its stored box
 * (which spans -180…180).
 */
import { sql, type RawBuilder } from 'kysely';
import { findBandFile, resolveBand, ValidationError, type GranuleMetadata, type ProductLevel, type SafeFile } from '@scenecache/core';
import type { Queryable } from './database.js';
import type { CachedBand, GeoJsonGeometry } from './schema.js';

/** Whose products: the global cache (admin keys) or one tenant's bucket (tenant keys). */
export type StacView = { readonly kind: 'global' } | { readonly kind: 'tenant'; readonly tenantId: string };

/** `[west, south, east, north]` in degrees, west ≤ east (split antimeridian-crossing boxes first). */
export type LonLatBox = readonly [number, number, number, number];

/** The keyset position after which a page starts: the last row of the previous page. */
export interface StacPagePosition {
  /** `sensed_at` to the microsecond, as {@link StacProductRow.position} gives it (`2024-03-24T10:16:49.024000Z`). */
  readonly sensedAt: string;
  readonly sceneId: string;
}

/** Filters of {@link searchStacProducts}; every given filter must hold (AND). */
export interface StacProductFilter {
  readonly view: StacView;
  /** Product levels (the collections `sentinel-2-l1c` → `L1C`, `sentinel-2-l2a` → `L2A`); undefined = both. */
  readonly levels?: readonly ProductLevel[] | undefined;
  /** Scene ids (product names without `.SAFE`); undefined = any. */
  readonly ids?: readonly string[] | undefined;
  /**
   * Products whose bounding box overlaps any of these boxes (OR; two boxes for a query box that
   * crosses the antimeridian). Products without a footprint never match. Undefined = anywhere.
   */
  readonly boxes?: readonly LonLatBox[] | undefined;
  /** `sensed_at >= start` (RFC 3339 with a zone, to the microsecond); undefined = open. */
  readonly start?: string | undefined;
  /** `sensed_at <= end`; undefined = open. */
  readonly end?: string | undefined;
}

/** One band object of a product in the view's bucket. */
export interface StacBandObject {
  /** Object key in {@link StacProductRow.bucket}. */
  readonly key: string;
  /** Bytes; undefined when neither the global entry nor the manifest describes the band. */
  readonly size?: number | undefined;
  /** SHA3-256, lower-case hex; undefined as `size`. */
  readonly sha3_256?: string | undefined;
}

/** A product as one view sees it. */
export interface StacProductRow {
  readonly sceneId: string;
  readonly level: ProductLevel;
  /** OData `ContentDate.Start`. */
  readonly sensedAt: Date;
  /** Keyset position of this row (pass it as `after` to get the next page). */
  readonly position: StacPagePosition;
  /** OData `GeoFootprint` (GeoJSON, WGS84); null when the catalogue gave none. */
  readonly footprint: GeoJsonGeometry | null;
  /** What `MTD_TL.xml` / `MTD_MSIL*.xml` say; null until a job read them. */
  readonly granuleMetadata: GranuleMetadata | null;
  /** The view's bucket: the global bucket, or the tenant's. */
  readonly bucket: string;
  /** Band id (`B04`, `B04_20m`, `SCL`) → its object, in band id order. */
  readonly bands: Readonly<Record<string, StacBandObject>>;
  /** When the view's row was created / last changed (the global row, or the tenant's). */
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** Per product level: how many products the view holds and their extent. */
export interface StacLevelExtent {
  readonly level: ProductLevel;
  readonly products: number;
  /** `[west, south, east, north]` of the products' bounding boxes; undefined when none has a footprint. */
  readonly bbox: LonLatBox | undefined;
  /** Earliest and latest `sensed_at`. */
  readonly start: Date;
  readonly end: Date;
}

interface ProductQueryRow {
  scene_id: string;
  sensed_at: Date;
  sensed_key: string;
  footprint: GeoJsonGeometry | null;
  granule_metadata: GranuleMetadata | null;
  bucket: string;
  created_at: Date;
  updated_at: Date;
  /** Global view: the row's entries. Tenant view: the global row's (null when it is gone or invalid). */
  global_bands: Record<string, CachedBand> | null;
  /** Tenant view only: band → key in the tenant bucket. */
  tenant_bands: Record<string, string> | null;
  /** Tenant view only, and only when the global row does not describe every band of the tenant. */
  files: SafeFile[] | null;
}

/** Missions of Sentinel-2 product names (`S2A`…`S2D`, core's product-name.ts). */
const MISSIONS = ['S2A', 'S2B', 'S2C', 'S2D'];

/**
 * LIKE patterns of the scene ids of `levels` (`S2A\_MSIL2A\_%`, …): prefixes, so the planner
 * estimates their share from `scene_id`'s statistics and keeps reading the `sensed_at` index in
 * order (an expression such as `split_part(scene_id, '_', 2)` has no statistics: estimated at
 * 0.5 %, it made the planner sort the whole table for every page).
 */
function levelPatterns(levels: readonly ProductLevel[]): string[] {
  return levels.flatMap((level) => MISSIONS.map((mission) => `${mission}\\_MSI${level}\\_%`));
}

/** The level of a scene id (`S2B_MSIL2A_…` → `L2A`). */
function levelOf(sceneId: string): ProductLevel {
  return sceneId.split('_')[1] === 'MSIL1C' ? 'L1C' : 'L2A';
}

/**
 * The view's products with what the items need, as `FROM … WHERE …` (alias `u` for
 * `upstream_products`), and the columns to select.
 */
function viewSource(view: StacView): { columns: RawBuilder<unknown>; from: RawBuilder<unknown> } {
  if (view.kind === 'global') {
    return {
      columns: sql`g.storage_bucket AS bucket, g.created_at, g.updated_at, g.bands AS global_bands, NULL::jsonb AS tenant_bands, NULL::jsonb AS files`,
      from: sql`global_scene_cache g JOIN upstream_products u ON u.scene_id = g.scene_id
        WHERE g.is_valid AND g.bands <> '{}'::jsonb AND u.sensed_at IS NOT NULL`,
    };
  }
  return {
    // The manifest only when the global row cannot size every band of the tenant's (it is ~100 files).
    columns: sql`t.bucket, t.created_at, t.updated_at, g.bands AS global_bands, t.bands AS tenant_bands,
      CASE WHEN g.bands IS NOT NULL AND g.bands ?& ARRAY(SELECT jsonb_object_keys(t.bands)) THEN NULL ELSE u.files END AS files`,
    from: sql`tenant_scenes t JOIN upstream_products u ON u.scene_id = t.scene_id
        LEFT JOIN global_scene_cache g ON g.scene_id = t.scene_id AND g.is_valid
        WHERE t.tenant_id = ${view.tenantId} AND t.bands <> '{}'::jsonb AND u.sensed_at IS NOT NULL`,
  };
}

/**
 * `SELECT 1` for each polygon of `u.footprint` (a Polygon, or each part of a MultiPolygon) whose
 * outer ring's box overlaps `query`. The stored box of a footprint that crosses the antimeridian
 * (split into parts at ±180°, RFC 7946 §3.1.9) spans -180…180 and overlaps every query box of its
 * latitudes; its parts' boxes do not. Evaluated only for such rows (a few; after the GiST filter).
 */
function polygonBoxes(query: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`SELECT 1
    FROM jsonb_array_elements(CASE WHEN u.footprint->>'type' = 'MultiPolygon' THEN u.footprint->'coordinates' ELSE jsonb_build_array(u.footprint->'coordinates') END) AS part(polygon)
    CROSS JOIN LATERAL (
      SELECT min((p->>0)::float8) AS w, min((p->>1)::float8) AS s, max((p->>0)::float8) AS e, max((p->>1)::float8) AS n
      FROM jsonb_array_elements(part.polygon->0) AS ring(p)
    ) AS b
    WHERE box(point(b.w, b.s), point(b.e, b.n)) && ${query}`;
}

/** The filter's conditions, each starting with `AND`. */
function filterConditions(filter: StacProductFilter): RawBuilder<unknown>[] {
  const where: RawBuilder<unknown>[] = [];
  if (filter.levels !== undefined) where.push(sql`AND u.scene_id LIKE ANY(${levelPatterns(filter.levels)}::text[])`);
  if (filter.ids !== undefined) where.push(sql`AND u.scene_id = ANY(${[...filter.ids]}::text[])`);
  if (filter.boxes !== undefined) {
    const overlaps = filter.boxes.map(([w, s, e, n]) => {
      const query = sql`box(point(${w}::float8, ${s}::float8), point(${e}::float8, ${n}::float8))`;
      // The expression of the GiST index upstream_products_bbox_idx; then, for a footprint split
      // at the antimeridian (its stored box spans the globe's width), the box of each polygon.
      return sql`(box(point(u.bbox_west, u.bbox_south), point(u.bbox_east, u.bbox_north)) && ${query}
        AND (u.bbox_east - u.bbox_west <= 180 OR EXISTS (${polygonBoxes(query)})))`;
    });
    where.push(sql`AND u.bbox_west IS NOT NULL AND (${sql.join(overlaps, sql` OR `)})`);
  }
  if (filter.start !== undefined) where.push(sql`AND u.sensed_at >= ${filter.start}::timestamptz`);
  if (filter.end !== undefined) where.push(sql`AND u.sensed_at <= ${filter.end}::timestamptz`);
  return where;
}

/** The band objects of a row in its view. */
function bandObjects(row: ProductQueryRow, level: ProductLevel): Record<string, StacBandObject> {
  const out: Record<string, StacBandObject> = {};
  if (row.tenant_bands === null) {
    for (const id of Object.keys(row.global_bands ?? {}).sort()) {
      const entry = row.global_bands![id]!;
      out[id] = { key: entry.key, size: entry.size, sha3_256: entry.sha3_256.toLowerCase() };
    }
    return out;
  }
  for (const id of Object.keys(row.tenant_bands).sort()) {
    const key = row.tenant_bands[id]!;
    const entry = row.global_bands?.[id];
    if (entry) {
      out[id] = { key, size: entry.size, sha3_256: entry.sha3_256.toLowerCase() };
      continue;
    }
    let file: SafeFile | undefined;
    try {
      file = row.files ? findBandFile(row.files, resolveBand(level, id)) : undefined;
    } catch (err) {
      // A band id the catalogue does not know (never written by the worker): listed without size.
      if (!(err instanceof ValidationError)) throw err;
    }
    out[id] = file ? { key, size: file.size, sha3_256: file.sha3_256.toLowerCase() } : { key };
  }
  return out;
}

function toProductRow(row: ProductQueryRow): StacProductRow {
  const level = levelOf(row.scene_id);
  return {
    sceneId: row.scene_id,
    level,
    sensedAt: row.sensed_at,
    position: { sensedAt: row.sensed_key, sceneId: row.scene_id },
    footprint: row.footprint,
    granuleMetadata: row.granule_metadata,
    bucket: row.bucket,
    bands: bandObjects(row, level),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The select list shared by search and lookup: `sensed_key` is the keyset value, to the microsecond. */
function productColumns(columns: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`u.scene_id, u.sensed_at, to_char(u.sensed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS sensed_key,
    u.footprint, u.granule_metadata, ${columns}`;
}

/**
 * One page of the view's products matching `filter`, newest sensing time first.
 *
 * @param after - the last row of the previous page (its {@link StacProductRow.position}); undefined
 *   for the first page.
 * @param limit - rows to return (1–10000).
 * @returns up to `limit` rows and whether more follow (one more row was read to know).
 */
export async function searchStacProducts(
  db: Queryable,
  filter: StacProductFilter,
  page: { readonly after?: StacPagePosition | undefined; readonly limit: number },
): Promise<{ rows: StacProductRow[]; more: boolean }> {
  const { columns, from } = viewSource(filter.view);
  const where = filterConditions(filter);
  if (page.after !== undefined) where.push(sql`AND (u.sensed_at, u.scene_id) < (${page.after.sensedAt}::timestamptz, ${page.after.sceneId})`);
  const result = await sql<ProductQueryRow>`SELECT ${productColumns(columns)} FROM ${from} ${sql.join(where, sql` `)}
    ORDER BY u.sensed_at DESC, u.scene_id DESC LIMIT ${page.limit + 1}`.execute(db);
  const rows = result.rows.map(toProductRow);
  const more = rows.length > page.limit;
  return { rows: more ? rows.slice(0, page.limit) : rows, more };
}

/** One product of the view, or undefined when the view does not hold it (or it is not of `level`). */
export async function findStacProduct(db: Queryable, view: StacView, level: ProductLevel, sceneId: string): Promise<StacProductRow | undefined> {
  const { columns, from } = viewSource(view);
  const where = filterConditions({ view, levels: [level], ids: [sceneId] });
  const result = await sql<ProductQueryRow>`SELECT ${productColumns(columns)} FROM ${from} ${sql.join(where, sql` `)}`.execute(db);
  const row = result.rows[0];
  return row && toProductRow(row);
}

/**
 * Per product level: the view's product count, the union of their bounding boxes and their
 * sensing time range (the collections' extents). Levels the view holds nothing of are absent.
 */
export async function stacLevelExtents(db: Queryable, view: StacView): Promise<StacLevelExtent[]> {
  const { from } = viewSource(view);
  const result = await sql<{ product_type: string; products: number; w: number | null; s: number | null; e: number | null; n: number | null; start: Date; end: Date }>`
    SELECT split_part(u.scene_id, '_', 2) AS product_type, count(*)::int AS products,
      min(u.bbox_west) AS w, min(u.bbox_south) AS s, max(u.bbox_east) AS e, max(u.bbox_north) AS n,
      min(u.sensed_at) AS start, max(u.sensed_at) AS "end"
    FROM ${from} GROUP BY 1 ORDER BY 1`.execute(db);
  return result.rows.map((r) => ({
    level: r.product_type === 'MSIL1C' ? 'L1C' : 'L2A',
    products: r.products,
    bbox: r.w === null || r.s === null || r.e === null || r.n === null ? undefined : [r.w, r.s, r.e, r.n],
    start: r.start,
    end: r.end,
  }));
}
