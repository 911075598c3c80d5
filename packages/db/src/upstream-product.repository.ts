/**
 * `upstream_products` (migration 0004): a product's OData catalogue entry and `manifest.safe`
 * files, stored by the first job that fetched them and read by every later one, so CDSE answers
 * each lookup and each manifest once per product however many jobs, bands and workers need them.
 */
import type { SafeFile } from '@scenecache/core';
import type { Queryable } from './database.js';

/** What is stored of a product (see {@link storeUpstreamProduct}). */
export interface UpstreamProduct {
  sceneId: string;
  /** OData `Id`. */
  cdseProductId: string;
  /** The OData entry as CDSE returned it. */
  product: Record<string, unknown>;
  /** Every file of `manifest.safe` with its byte size and SHA3-256. */
  files: SafeFile[];
}

/** The stored metadata of `sceneId`; `undefined` when no job fetched it yet. */
export async function findUpstreamProduct(db: Queryable, sceneId: string): Promise<UpstreamProduct | undefined> {
  const row = await db.selectFrom('upstream_products').selectAll().where('scene_id', '=', sceneId).executeTakeFirst();
  return row && { sceneId: row.scene_id, cdseProductId: row.cdse_product_id, product: row.product, files: row.files };
}

/**
 * Store a product's metadata; a row already there (another job stored it first) is kept.
 * @returns the stored metadata (the existing row's when there was one).
 */
export async function storeUpstreamProduct(db: Queryable, input: UpstreamProduct): Promise<UpstreamProduct> {
  await db
    .insertInto('upstream_products')
    .values({ scene_id: input.sceneId, cdse_product_id: input.cdseProductId, product: JSON.stringify(input.product), files: JSON.stringify(input.files) })
    .onConflict((oc) => oc.column('scene_id').doNothing())
    .execute();
  return (await findUpstreamProduct(db, input.sceneId))!;
}
