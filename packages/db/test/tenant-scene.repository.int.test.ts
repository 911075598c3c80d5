import { findTenantScene, upsertTenantScene } from '@scenecache/db';
import { createTestDatabase, type TestDatabase } from '@scenecache/testing';
import { SCENE } from './fixtures.js';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('upsertTenantScene', () => {
  it('inserts, then merges bands on (tenant_id, scene_id)', async () => {
    const first = await upsertTenantScene(t.db, {
      tenantId: 'acme',
      sceneId: SCENE,
      bucket: 'scenecache-tenant-acme',
      bands: { B04: `${SCENE}/B04.jp2`, B08: `${SCENE}/B08.jp2` },
    });
    expect(first).toMatchObject({ tenant_id: 'acme', scene_id: SCENE, bucket: 'scenecache-tenant-acme' });

    const second = await upsertTenantScene(t.db, {
      tenantId: 'acme',
      sceneId: SCENE,
      bucket: 'scenecache-tenant-acme',
      bands: { B08: `${SCENE}/v2/B08.jp2`, B11: `${SCENE}/B11.jp2` },
    });

    expect(second.id).toBe(first.id);
    expect(second.created_at).toEqual(first.created_at);
    expect(second.updated_at.getTime()).toBeGreaterThanOrEqual(first.updated_at.getTime());
    expect(second.bands).toEqual({ B04: `${SCENE}/B04.jp2`, B08: `${SCENE}/v2/B08.jp2`, B11: `${SCENE}/B11.jp2` });
    expect(await findTenantScene(t.db, 'acme', SCENE)).toEqual(second);
  });

  it('keeps tenants apart', async () => {
    await upsertTenantScene(t.db, { tenantId: 'one', sceneId: SCENE, bucket: 'b-one', bands: { B02: 'k1' } });
    await upsertTenantScene(t.db, { tenantId: 'two', sceneId: SCENE, bucket: 'b-two', bands: { B03: 'k2' } });

    expect((await findTenantScene(t.db, 'one', SCENE))?.bands).toEqual({ B02: 'k1' });
    expect((await findTenantScene(t.db, 'two', SCENE))?.bands).toEqual({ B03: 'k2' });
    expect(await findTenantScene(t.db, 'three', SCENE)).toBeUndefined();
  });

  it('never loses a band when jobs of one tenant upsert at once', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `B${i}`);
    await Promise.all(ids.map((id) => upsertTenantScene(t.db, { tenantId: 'race', sceneId: SCENE, bucket: 'b', bands: { [id]: `k-${id}` } })));

    const row = await findTenantScene(t.db, 'race', SCENE);
    expect(Object.keys(row?.bands ?? {}).sort()).toEqual(ids);
  });
});
