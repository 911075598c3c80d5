import { sql } from 'kysely';
import {
  findScene,
  invalidateSceneEntries,
  deleteBandEntries,
  recordCacheHit,
  registerBands,
} from '@scenecache/db';
import { createTestDatabase, type TestDatabase } from '@scenecache/testing';
import { band, registration, SCENE } from './fixtures.js';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});
beforeEach(async () => {
  await t.db.deleteFrom('global_scene_cache').execute();
});

/** What `POST /v1/admin/cache/invalidate {scene_id}` does. */
async function invalidate(db: Parameters<typeof invalidateSceneEntries>[0], sceneId: string): Promise<void> {
  await invalidateSceneEntries(db, { sceneId }, { dryRun: false, listCap: 1 });
}

describe('registerBands', () => {
  it('inserts a row with its bands and their total size', async () => {
    const row = await registerBands(t.db, registration({ B04: 120_000_000, B08: 130_000_000 }));

    expect(row).toMatchObject({
      scene_id: SCENE,
      storage_bucket: 'scenecache-global',
      sensing_date: '2024-11-23',
      product_level: 'L2A',
      tile: '03VUL',
      mission: 'S2B',
      is_valid: true,
      download_count: 0,
      last_accessed_at: null,
      total_bytes: 250_000_000,
    });
    expect(row.bands).toEqual({ B04: band('B04', 120_000_000), B08: band('B08', 130_000_000) });
    expect(await findScene(t.db, SCENE)).toEqual(row);
  });

  it('merges new bands into a valid row, overwriting a band registered again', async () => {
    const first = await registerBands(t.db, registration({ B04: 100, B08: 200 }));
    const second = await registerBands(t.db, registration({ B08: 250, B11: 30 }));

    expect(Object.keys(second.bands).sort()).toEqual(['B04', 'B08', 'B11']);
    expect(second.bands.B08?.size).toBe(250);
    expect(second.total_bytes).toBe(100 + 250 + 30);
    expect(second.id).toBe(first.id);
    expect(second.created_at).toEqual(first.created_at);
    expect(second.updated_at.getTime()).toBeGreaterThanOrEqual(first.updated_at.getTime());
  });

  it('replaces the bands of an invalidated row and makes it valid again, keeping its counters', async () => {
    await registerBands(t.db, registration({ B04: 100, B08: 200 }));
    await recordCacheHit(t.db, SCENE);
    await sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id = ${SCENE}`.execute(t.db);

    const row = await registerBands(t.db, registration({ B02: 50 }));

    expect(row.bands).toEqual({ B02: band('B02', 50) });
    expect(row.total_bytes).toBe(50);
    expect(row.is_valid).toBe(true);
    expect(row.download_count).toBe(1);
    expect(row.last_accessed_at).toBeInstanceOf(Date);
  });

  it('sees an invalidation that commits while it waits for the row lock', async () => {
    await registerBands(t.db, registration({ B04: 100 }));
    // An invalidation holding the row (not yet committed) when the registration starts.
    const invalidation = await t.db.startTransaction().execute();
    await invalidate(invalidation, SCENE);
    const registering = registerBands(t.db, registration({ B08: 200 }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await invalidation.commit().execute();
    const row = await registering;
    // The upsert waited for the row and saw it invalid: the invalidated B04 is replaced, not merged.
    expect(row.bands).toEqual({ B08: band('B08', 200) });
  });

  it('keeps the stored CDSE id and cloud cover when the new registration has none', async () => {
    await registerBands(t.db, { ...registration({ B04: 1 }), cloudCoverage: 12.5 });
    const row = await registerBands(t.db, { ...registration({ B08: 2 }), cdseProductId: null });

    expect(row.cdse_product_id).toBe('0f5b4b4e-6d5c-4a52-9d8e-3a2d3c1b2a10');
    expect(row.cloud_coverage).toBe(12.5);
  });

  it('never loses a band when jobs register different bands of a scene at once', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `B${String(i + 1).padStart(2, '0')}`);
    await Promise.all(ids.map((id, i) => registerBands(t.db, registration({ [id]: i + 1 }))));

    const row = await findScene(t.db, SCENE);
    expect(Object.keys(row?.bands ?? {}).sort()).toEqual(ids);
    expect(row?.total_bytes).toBe((12 * 13) / 2);
  });

  it('works inside a transaction and rolls back with it', async () => {
    await expect(
      t.db.transaction().execute(async (trx) => {
        await registerBands(trx, registration({ B04: 1 }));
        expect(await findScene(trx, SCENE)).toBeDefined();
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await findScene(t.db, SCENE)).toBeUndefined();
  });
});

describe('deleteBandEntries', () => {
  it('removes the bands, recomputes total_bytes and keeps the row valid', async () => {
    const before = await registerBands(t.db, registration({ B04: 100, B08: 200, B11: 30 }));

    const row = await deleteBandEntries(t.db, SCENE, ['B08', 'B11', 'B99']);

    expect(row?.bands).toEqual({ B04: band('B04', 100) });
    expect(row?.total_bytes).toBe(100);
    expect(row?.is_valid).toBe(true);
    expect(row?.updated_at.getTime()).toBeGreaterThanOrEqual(before.updated_at.getTime());
  });

  it('leaves an empty band map when every band goes', async () => {
    await registerBands(t.db, registration({ B04: 100 }));
    const row = await deleteBandEntries(t.db, SCENE, ['B04']);
    expect(row?.bands).toEqual({});
    expect(row?.total_bytes).toBe(0);
  });

  it('returns undefined for an unknown scene', async () => {
    expect(await deleteBandEntries(t.db, 'nope', ['B04'])).toBeUndefined();
  });
});

describe('recordCacheHit', () => {
  it('counts hits and stamps last_accessed_at without touching updated_at', async () => {
    const registered = await registerBands(t.db, registration({ B04: 100 }));

    expect(await recordCacheHit(t.db, SCENE)).toBe(1);
    expect(await recordCacheHit(t.db, SCENE)).toBe(2);

    const row = await findScene(t.db, SCENE);
    expect(row?.download_count).toBe(2);
    expect(row?.last_accessed_at).toBeInstanceOf(Date);
    expect(row?.updated_at).toEqual(registered.updated_at);
  });

  it('returns undefined for an unknown scene', async () => {
    expect(await recordCacheHit(t.db, 'nope')).toBeUndefined();
  });
});

// The seed's monitoring and maintenance SQL, verbatim, must keep working on rows our code writes.
describe('seed SQL', () => {
  async function seedScenes(): Promise<void> {
    // hits: a → 3, b → 1, c → 0, d → 5 (then invalidated)
    for (const [id, hits] of [['scene-a', 3], ['scene-b', 1], ['scene-c', 0], ['scene-d', 5]] as const) {
      await registerBands(t.db, registration({ B04: 10 }, id));
      for (let i = 0; i < hits; i++) await recordCacheHit(t.db, id);
    }
  }

  it('top scenes by reuse, valid ones only', async () => {
    await seedScenes();
    await sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id = 'scene-d';`.execute(t.db);

    const { rows } = await sql<{ scene_id: string; download_count: number; last_accessed_at: Date | null }>`SELECT scene_id, download_count, last_accessed_at FROM global_scene_cache WHERE is_valid = true ORDER BY download_count DESC LIMIT 10;`.execute(t.db);

    expect(rows.map((r) => [r.scene_id, r.download_count])).toEqual([
      ['scene-a', 3],
      ['scene-b', 1],
      ['scene-c', 0],
    ]);
    expect(rows[0]?.last_accessed_at).toBeInstanceOf(Date);
    expect(rows[2]?.last_accessed_at).toBeNull();
  });

  it('cache hit rate (approximate)', async () => {
    const query = sql<{ hit_rate: number | null }>`SELECT COUNT(*) FILTER (WHERE download_count > 0)::float / NULLIF(COUNT(*), 0) AS hit_rate FROM global_scene_cache;`;
    expect((await query.execute(t.db)).rows).toEqual([{ hit_rate: null }]);

    await seedScenes();
    expect((await query.execute(t.db)).rows).toEqual([{ hit_rate: 0.75 }]);
  });

  it('invalidate a scene', async () => {
    await seedScenes();
    const result = await sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id = 'scene-b';`.execute(t.db);

    expect(result.numAffectedRows).toBe(1n);
    expect((await findScene(t.db, 'scene-b'))?.is_valid).toBe(false);
    expect((await findScene(t.db, 'scene-a'))?.is_valid).toBe(true);
  });

  it('clean up invalid entries older than 30 days', async () => {
    await seedScenes();
    await sql`UPDATE global_scene_cache SET is_valid = false WHERE scene_id IN ('scene-a', 'scene-b')`.execute(t.db);
    // scene-a: invalid and old; scene-b: invalid but recent; scene-c: valid and old.
    await sql`UPDATE global_scene_cache SET updated_at = now() - interval '31 days' WHERE scene_id IN ('scene-a', 'scene-c')`.execute(t.db);

    const result = await sql`DELETE FROM global_scene_cache WHERE is_valid = false AND updated_at < NOW() - INTERVAL '30 days';`.execute(t.db);

    expect(result.numAffectedRows).toBe(1n);
    const left = await t.db.selectFrom('global_scene_cache').select('scene_id').orderBy('scene_id').execute();
    expect(left.map((r) => r.scene_id)).toEqual(['scene-b', 'scene-c', 'scene-d']);
  });
});
