/**
 * The STAC API on what the real pipeline writes (issues 16/19): jobs enqueued through the API with
 * tenant keys, run by a worker against cdse-sim (which serves real-layout products and metadata
 * files templated from the real MTD_TL.xml / MTD_MSIL*.xml), then read back as STAC — no seeding:
 *
 * - each tenant's item has exactly the bands its jobs copied, in its bucket, with the manifest's
 *   size and SHA3-256 (`file:checksum`), the grid of the band's resolution from the product's
 *   MTD_TL.xml (`proj:*`), the catalogue's footprint and sensing time, the metadata's cloud cover,
 *   sun angles and processing baseline; every document validates against the STAC schemas;
 * - a band downloaded through its signed href has the manifest's SHA3-256.
 */
import { createApiKey } from '@scenecache/db';
import { startPipelineHarness, type PipelineHarness } from '../../worker/test/pipeline-harness.js';
import { loadStacValidator, sha3 } from './stac-helpers.js';

const ADMIN_API_KEY = 'test-admin-key-stac-pipeline-0123';
const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const L1C = 'S2A_MSIL1C_20240324T101651_N0510_R065_T32TNS_20240324T122424';

interface Asset {
  href: string;
  [field: string]: unknown;
}
interface Item {
  id: string;
  geometry: unknown;
  bbox?: number[];
  properties: Record<string, unknown>;
  assets: Record<string, Asset>;
  stac_extensions: string[];
}

describe('STAC items of products the pipeline cached', () => {
  let h: PipelineHarness;
  const keys: Record<string, string> = {};
  const stac = loadStacValidator();

  const as = (tenant: string) => ({ authorization: `Bearer ${keys[tenant]!}` });
  async function get(path: string, tenant: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${h.apiUrl}${path}`, { headers: as(tenant) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  beforeAll(async () => {
    h = await startPipelineHarness({ env: { AUTH_MODE: 'keys', ADMIN_API_KEY } });
    for (const tenant of ['acme', 'globex']) keys[tenant] = (await createApiKey(h.db, { tenantId: tenant })).secret;
    await h.startWorker();
    const jobs: string[] = [];
    for (const [tenant, scene, bands] of [
      ['acme', L2A, ['B04', 'B8A', 'SCL']],
      ['globex', L2A, ['B04']],
      ['globex', L1C, ['B04', 'B8A']],
    ] as const) {
      const res = await fetch(`${h.apiUrl}/v1/downloads`, { method: 'POST', headers: { ...as(tenant), 'content-type': 'application/json' }, body: JSON.stringify({ tenant_id: tenant, scene_id: scene, bands }) });
      expect(res.status).toBe(202);
      jobs.push(((await res.json()) as { job_id: string }).job_id);
    }
    const rows = await h.waitForJobs(jobs, 90_000);
    expect(rows.map((r) => r.status)).toEqual(['completed', 'completed', 'completed']);
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  it("each tenant's item: its bands in its bucket, the manifest's size and checksum, the band grids of MTD_TL.xml, the catalogue's footprint and time", async () => {
    const acme = await get('/stac/v1/search', 'acme');
    expect(acme.status).toBe(200);
    expect(stac.itemCollection(acme.body)).toEqual([]);
    const [item] = acme.body.features as Item[];
    expect((acme.body.features as Item[]).map((f) => f.id)).toEqual([L2A]);
    expect(Object.keys(item!.assets).sort()).toEqual(['B04', 'B8A', 'SCL']);
    expect(item!.stac_extensions).toEqual(expect.arrayContaining(['https://stac-extensions.github.io/projection/v1.2.0/schema.json', 'https://stac-extensions.github.io/file/v2.1.0/schema.json']));
    const bucket = `${h.settings.tenantBucketPrefix}acme`;
    const epsg = item!.properties['proj:epsg'];
    expect(epsg).toBe(32632);
    for (const [band, res] of [['B04', 10], ['B8A', 20], ['SCL', 20]] as const) {
      const file = await h.upstreamFile(L2A, band);
      const asset = item!.assets[band]!;
      expect(asset.href).toMatch(new RegExp(`^s3://${bucket}/`));
      expect(asset).toMatchObject({ 'file:size': file.size, 'file:checksum': `1620${file.sha3_256.toLowerCase()}`, gsd: res, 'proj:epsg': 32632 });
      const transform = asset['proj:transform'] as number[];
      const shape = asset['proj:shape'] as number[];
      expect([transform[0], transform[4]]).toEqual([res, -res]);
      expect(shape).toEqual([109_800 / res, 109_800 / res]);
    }
    // Every band grid of one tile shares its upper-left corner.
    const corners = Object.values(item!.assets).map((a) => { const t = a['proj:transform'] as number[]; return `${t[2]},${t[5]}`; });
    expect(new Set(corners).size).toBe(1);
    expect(item!.geometry).toEqual(expect.objectContaining({ type: expect.stringMatching(/Polygon$/) as string }));
    expect(item!.bbox).toHaveLength(4);
    expect(item!.properties).toMatchObject({ datetime: expect.stringMatching(/^2024-03-24T10:16:49/) as string, 'mgrs:utm_zone': 32, 'mgrs:latitude_band': 'T', 'mgrs:grid_square': 'NS' });
    for (const field of ['eo:cloud_cover', 'view:sun_azimuth', 'view:sun_elevation', 's2:processing_baseline']) expect(item!.properties).toHaveProperty([field]);

    const globex = await get('/stac/v1/search', 'globex');
    expect(stac.itemCollection(globex.body)).toEqual([]);
    expect(Object.fromEntries((globex.body.features as Item[]).map((f) => [f.id, Object.keys(f.assets).sort()]))).toEqual({ [L2A]: ['B04'], [L1C]: ['B04', 'B8A'] });
  });

  it('a band downloaded through its signed href has the manifest SHA3-256', async () => {
    const reply = await get(`/stac/v1/collections/sentinel-2-l2a/items/${L2A}?sign=true`, 'acme');
    expect(reply.status).toBe(200);
    expect(stac.item(reply.body)).toEqual([]);
    const href = (reply.body as unknown as Item).assets.B8A!.href;
    const res = await fetch(href);
    expect(res.status).toBe(200);
    expect(sha3(Buffer.from(await res.arrayBuffer()))).toBe((await h.upstreamFile(L2A, 'B8A')).sha3_256.toLowerCase());
  });
});
