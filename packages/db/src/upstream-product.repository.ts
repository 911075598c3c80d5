/**
 * `upstream_products` (migration 0004): a product's OData catalogue entry and `manifest.safe`
 * files, stored by the first job that fetched them and read by every later one, so CDSE answers
 * each lookup and each manifest once per product however many jobs, bands and workers need them.
 */
import type { GranuleMetadata, SafeFile } from '@scenecache/core';
import type { Queryable } from './database.js';
import type { GeoJsonGeometry } from './schema.js';

/** What is stored of a product (see {@link storeUpstreamProduct}). */
export interface UpstreamProduct {
  sceneId: string;
  /** OData `Id`. */
  cdseProductId: string;
  /** The OData entry as CDSE returned it. */
  product: Record<string, unknown>;
  /** Every file of `manifest.safe` with its byte size and SHA3-256. */
  files: SafeFile[];
  /** OData `GeoFootprint` (GeoJSON, WGS84); undefined for rows stored before migration 0008. */
  footprint?: GeoJsonGeometry | undefined;
  /** OData `ContentDate.Start`. */
  sensedAt?: Date | undefined;
  /** The parsed `MTD_TL.xml` / `MTD_MSIL*.xml`; undefined until a job read them (migration 0008). */
  granuleMetadata?: GranuleMetadata | undefined;
}

/**
 * The envelope `[min lon, min lat, max lon, max lat]` (degrees) of a GeoJSON geometry's positions;
 * undefined when it has none. Stored as the footprint's indexed `box`, which cannot wrap: a
 * footprint split at the antimeridian gets -180…180 here, and the STAC search then matches it by
 * its parts. Not the STAC item `bbox` (west > east across the antimeridian: `geometryBbox` in
 * apps/api/src/stac/stac-item.ts).
 */
function geometryEnvelope(geometry: GeoJsonGeometry): [number, number, number, number] | undefined {
  let w = Infinity, s = Infinity, e = -Infinity, n = -Infinity;
  const walk = (c: unknown): void => {
    if (!Array.isArray(c)) return;
    if (typeof c[0] === 'number' && typeof c[1] === 'number') {
      w = Math.min(w, c[0]); e = Math.max(e, c[0]); s = Math.min(s, c[1]); n = Math.max(n, c[1]);
      return;
    }
    for (const x of c) walk(x);
  };
  walk(geometry.coordinates);
  return Number.isFinite(w) ? [w, s, e, n] : undefined;
}

/**
 * Whether a stored product lacks what migration 0008 added (sensing time, what its metadata files
 * say): a job must prepare it again. A missing footprint alone does not count: early-2023 catalogue
 * answers have none.
 */
export function lacksStacMetadata(p: UpstreamProduct): boolean {
  return p.granuleMetadata === undefined || p.sensedAt === undefined;
}

/** The stored metadata of `sceneId`; `undefined` when no job fetched it yet. */
export async function findUpstreamProduct(db: Queryable, sceneId: string): Promise<UpstreamProduct | undefined> {
  const row = await db.selectFrom('upstream_products').selectAll().where('scene_id', '=', sceneId).executeTakeFirst();
  return (
    row && {
      sceneId: row.scene_id,
      cdseProductId: row.cdse_product_id,
      product: row.product,
      files: row.files,
      footprint: row.footprint ?? undefined,
      sensedAt: row.sensed_at ?? undefined,
      granuleMetadata: row.granule_metadata ?? undefined,
    }
  );
}

/**
 * Store a product's metadata. A complete row already there (another job stored it first) is kept;
 * a row stored before migration 0008 (no sensing time or metadata files) gets the new fields filled.
 * @returns the stored metadata (the existing row's when it was complete).
 */
export async function storeUpstreamProduct(db: Queryable, input: UpstreamProduct): Promise<UpstreamProduct> {
  const bbox = input.footprint ? geometryEnvelope(input.footprint) : undefined;
  const stac = {
    footprint: input.footprint ? JSON.stringify(input.footprint) : null,
    bbox_west: bbox?.[0] ?? null,
    bbox_south: bbox?.[1] ?? null,
    bbox_east: bbox?.[2] ?? null,
    bbox_north: bbox?.[3] ?? null,
    sensed_at: input.sensedAt ?? null,
    granule_metadata: input.granuleMetadata ? JSON.stringify(input.granuleMetadata) : null,
  };
  await db
    .insertInto('upstream_products')
    .values({ scene_id: input.sceneId, cdse_product_id: input.cdseProductId, product: JSON.stringify(input.product), files: JSON.stringify(input.files), ...stac })
    .onConflict((oc) =>
      oc
        .column('scene_id')
        .doUpdateSet({ ...stac, product: JSON.stringify(input.product) })
        .where((eb) => eb.or([eb('upstream_products.granule_metadata', 'is', null), eb('upstream_products.sensed_at', 'is', null)])),
    )
    .execute();
  return (await findUpstreamProduct(db, input.sceneId))!;
}
