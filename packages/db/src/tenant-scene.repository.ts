/**
 * `tenant_scenes`: one row per (tenant, scene) recording which bands the tenant's bucket holds.
 */
import { sql } from 'kysely';
import type { Queryable } from './database.js';
import type { TenantSceneRow } from './schema.js';

/** Input of {@link upsertTenantScene}. */
export interface UpsertTenantSceneInput {
  tenantId: string;
  /** Product name without `.SAFE`. */
  sceneId: string;
  /** The tenant's bucket (`{TENANT_BUCKET_PREFIX}{tenant_id}`). */
  bucket: string;
  /** Band id → object key in `bucket`, for the bands just copied. */
  bands: Record<string, string>;
}

/**
 * Record the bands copied into a tenant's bucket: insert the (tenant, scene) row or merge `bands`
 * into it (a band present in both gets the new key), set `bucket` and `updated_at`. One statement,
 * so concurrent jobs of the same tenant and scene never lose each other's bands.
 *
 * @returns the row after the write.
 */
export async function upsertTenantScene(db: Queryable, input: UpsertTenantSceneInput): Promise<TenantSceneRow> {
  return db
    .insertInto('tenant_scenes')
    .values({ tenant_id: input.tenantId, scene_id: input.sceneId, bucket: input.bucket, bands: JSON.stringify(input.bands) })
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'scene_id']).doUpdateSet((eb) => ({
        bucket: eb.ref('excluded.bucket'),
        bands: sql<string>`tenant_scenes.bands || excluded.bands`,
        updated_at: sql`now()`,
      })),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The tenant's row for a scene; `undefined` when the tenant never received it. */
export async function findTenantScene(db: Queryable, tenantId: string, sceneId: string): Promise<TenantSceneRow | undefined> {
  return db
    .selectFrom('tenant_scenes')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('scene_id', '=', sceneId)
    .executeTakeFirst();
}
