/**
 * The STAC API's reads use indexes (issues 16/19): with 5,000 cached products (their
 * `upstream_products` rows with footprint boxes and sensing times, `global_scene_cache` rows, and
 * 20 tenants holding a tenth of them each in `tenant_scenes`), ANALYZEd, every search page and item lookup the API
 * makes is `EXPLAIN`ed with its parameters:
 *
 * - no `Seq Scan` on `upstream_products`, `global_scene_cache` or `tenant_scenes` in any of them;
 * - a `bbox` search reads the GiST index `upstream_products_bbox_idx` (`box(…) && box(…)`);
 * - a `datetime` search and the keyset pages read `upstream_products_sensed_at_idx`
 *   (`(sensed_at, scene_id)`, backwards for newest first).
 *
 * `/collections` (the views' extents: one aggregate over the view) is not among them: it reads
 * the whole view by design.
 */
import { sql, type CompiledQuery, type Kysely } from 'kysely';
import { sceneStoragePath, parseProductName } from '@scenecache/core';
import { createApiKey, createDb, type DB } from '@scenecache/db';
import { createTestDatabase, type TestDatabase } from '@scenecache/testing';
import { startTestApi, type TestApi } from './helpers.js';
import { syntheticGranuleMetadata } from './stac-helpers.js';

const PRODUCTS = 5_000;
/** Tenants holding copies: `acme` and 19 others, each a tenth of the products. */
const TENANTS = 20;
const ADMIN_API_KEY = 'test-admin-key-stac-plans-01234';
const BAND_LETTERS = 'CDEFGHJKLMNPQRSTUVWX';
const SQUARE_LETTERS = 'ABCDEFGHJKLMNPQRSTUV';

type PlanNode = { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; Plans?: PlanNode[] };

function nodesOf(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(nodesOf)];
}

/** Product `i`: sensed 3 h after product i−1 from 2023-01-01, a tile by i, a 1° footprint box spread over the globe. */
function product(i: number): { sceneId: string; sensedAt: Date; box: [number, number, number, number] } {
  const sensedAt = new Date(Date.UTC(2023, 0, 1) + i * 3 * 3_600_000);
  const stamp = sensedAt.toISOString().replace(/[-:]/g, '').slice(0, 15);
  const tile = `${String(1 + (i % 60)).padStart(2, '0')}${BAND_LETTERS[Math.floor(i / 60) % 20]}${SQUARE_LETTERS[i % 20]}${SQUARE_LETTERS[Math.floor(i / 20) % 20]}`;
  const west = ((i * 37) % 350) - 175;
  const south = ((i * 13) % 140) - 70;
  return { sceneId: `S2B_MSIL2A_${stamp}_N0510_R065_T${tile}_${stamp}`, sensedAt, box: [west, south, west + 1, south + 1] };
}

describe('query plans of the STAC API at 5,000 products', () => {
  let t: TestDatabase;
  let db: Kysely<DB>;
  let api: TestApi;
  let tenantKey: string;
  let recorded: CompiledQuery[] = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    const rows = Array.from({ length: PRODUCTS }, (_, i) => product(i));
    for (let start = 0; start < rows.length; start += 1_000) {
      const chunk = rows.slice(start, start + 1_000);
      await t.db
        .insertInto('upstream_products')
        .values(
          chunk.map(({ sceneId, sensedAt, box: [w, s, e, n] }) => ({
            scene_id: sceneId,
            cdse_product_id: sceneId,
            product: '{}',
            files: '[]',
            footprint: JSON.stringify({ type: 'Polygon', coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] }),
            bbox_west: w,
            bbox_south: s,
            bbox_east: e,
            bbox_north: n,
            sensed_at: sensedAt,
            granule_metadata: JSON.stringify(syntheticGranuleMetadata(sceneId.split('_')[5]!.slice(1))),
          })),
        )
        .execute();
      await t.db
        .insertInto('global_scene_cache')
        .values(
          chunk.map(({ sceneId }) => {
            const p = parseProductName(sceneId);
            const key = `${sceneStoragePath(p)}/B04.jp2`;
            return {
              scene_id: sceneId,
              storage_bucket: 'global',
              storage_path: sceneStoragePath(p),
              bands: JSON.stringify({ B04: { key, size: 100, sha3_256: 'ab'.repeat(32), etag: 'e', safe_path: key, registered_at: '2024-01-01T00:00:00Z' } }),
              sensing_date: p.sensingDate,
              product_level: p.level,
              tile: p.tile,
              mission: p.mission,
              cdse_product_id: sceneId,
            };
          }),
        )
        .execute();
      // acme has every 10th product; 19 other tenants a tenth each too (10,000 rows in all).
      const copies = chunk.flatMap(({ sceneId }, j) =>
        Array.from({ length: TENANTS }, (_, k) => k)
          .filter((k) => (start + j + k) % 10 === 0)
          .map((k) => ({ tenant_id: k === 0 ? 'acme' : `tenant-${k}`, scene_id: sceneId, bucket: 'b', bands: JSON.stringify({ B04: `${sceneId}/B04.jp2` }) })),
      );
      await t.db.insertInto('tenant_scenes').values(copies).execute();
    }
    await sql`ANALYZE`.execute(t.db);
    db = createDb(t.url, { max: 4, log: (event) => void (event.level === 'query' && recorded.push(event.query)) });
    api = await startTestApi({ db, env: { ADMIN_API_KEY } });
    tenantKey = (await createApiKey(t.db, { tenantId: 'acme' })).secret;
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    await t?.drop();
  });

  /** Request `path`, then EXPLAIN each STAC query it made: the plan's nodes. */
  async function plansOf(path: string, key: string, json?: unknown): Promise<{ body: Record<string, unknown>; nodes: PlanNode[][] }> {
    recorded = [];
    const reply = await api.request(json === undefined ? 'GET' : 'POST', path, { headers: { authorization: `Bearer ${key}` }, json });
    expect({ path, status: reply.status }).toEqual({ path, status: 200 });
    const nodes: PlanNode[][] = [];
    for (const query of recorded.filter((q) => q.sql.includes('upstream_products'))) {
      const inlined = query.sql.replace(/\$(\d+)/g, (_, n: string) => {
        const value = query.parameters[Number(n) - 1];
        if (Array.isArray(value)) return `ARRAY[${value.map((v) => `'${String(v).replace(/'/g, "''")}'`).join(',')}]::text[]`;
        return typeof value === 'number' ? String(value) : `'${String(value).replace(/'/g, "''")}'`;
      });
      const plan = await sql<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>`EXPLAIN (FORMAT JSON) ${sql.raw(inlined)}`.execute(t.db);
      nodes.push(nodesOf(plan.rows[0]!['QUERY PLAN'][0]!.Plan));
    }
    expect(nodes.length).toBeGreaterThan(0);
    return { body: reply.body, nodes };
  }

  const seqScans = (nodes: PlanNode[][]) => nodes.flat().filter((n) => n['Node Type'] === 'Seq Scan').map((n) => n['Relation Name']);
  const indexes = (nodes: PlanNode[][]) => new Set(nodes.flat().flatMap((n) => (n['Index Name'] ? [n['Index Name']] : [])));

  it('search pages, filters and item lookups use indexes, for the admin and a tenant view', async () => {
    const one = product(4_210);
    const cases: Array<{ path: string; json?: unknown; uses?: string }> = [
      { path: '/stac/v1/search' },
      { path: '/stac/v1/search?limit=100' },
      { path: '/stac/v1/search?bbox=10,20,11.5,21.5', uses: 'upstream_products_bbox_idx' },
      { path: '/stac/v1/search?bbox=179,-10,-179,10', uses: 'upstream_products_bbox_idx' },
      { path: '/stac/v1/search?datetime=2023-06-01T00:00:00Z/2023-06-03T00:00:00Z', uses: 'upstream_products_sensed_at_idx' },
      { path: '/stac/v1/search?datetime=../2023-01-05T00:00:00Z', uses: 'upstream_products_sensed_at_idx' },
      { path: `/stac/v1/search?ids=${one.sceneId}` },
      { path: '/stac/v1/collections/sentinel-2-l2a/items?limit=20', uses: 'upstream_products_sensed_at_idx' },
      { path: `/stac/v1/collections/sentinel-2-l2a/items/${one.sceneId}` },
      { path: '/stac/v1/search', json: { bbox: [10, 20, 11.5, 21.5], datetime: '2023-01-01T00:00:00Z/..' }, uses: 'upstream_products_bbox_idx' },
    ];
    for (const key of [ADMIN_API_KEY, tenantKey]) {
      for (const c of cases) {
        const { body, nodes } = await plansOf(c.path, key, c.json);
        const view = key === ADMIN_API_KEY ? 'admin' : 'tenant';
        // The plan's outline is shown when it fails.
        const outline = seqScans(nodes).length === 0 ? '' : nodes.flat().map((n) => `${n['Node Type']} ${n['Relation Name'] ?? ''} ${n['Index Name'] ?? ''}`.trim()).join(' / ');
        expect({ view, path: c.path, seqScans: seqScans(nodes), outline }).toEqual({ view, path: c.path, seqScans: [], outline: '' });
        if (c.uses) expect({ path: c.path, uses: indexes(nodes).has(c.uses) }).toEqual({ path: c.path, uses: true });
        // The next page of the first search, by its keyset token.
        const next = ((body.links ?? []) as Array<{ rel: string; href: string }>).find((l) => l.rel === 'next');
        if (c.path === '/stac/v1/search' && next) {
          const url = new URL(next.href);
          const page2 = await plansOf(`${url.pathname}${url.search}`, key);
          expect(seqScans(page2.nodes)).toEqual([]);
          expect(indexes(page2.nodes).has('upstream_products_sensed_at_idx')).toBe(true);
        }
      }
    }
  });
});
