/**
 * Issue 19: a product's metadata files (`MTD_TL.xml`, `MTD_MSIL*.xml`), served by the sim from the
 * real fixtures, are read once per product however many jobs want the product, verified like band
 * files, parsed, and stored beside its manifest in `upstream_products`; they are not counted as bands.
 * A product stored before (no metadata) is prepared once more, keeping its manifest.
 */
import { sql } from 'kysely';
import { parseProductName } from '@scenecache/core';
import { findUpstreamProduct } from '@scenecache/db';
import { tileGridOf } from '@scenecache/cdse-sim';
import { startPipelineHarness, type PipelineHarness } from './pipeline-harness.js';

const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';
const L1C = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';

describe('product metadata files', () => {
  let h: PipelineHarness;

  beforeAll(async () => {
    h = await startPipelineHarness();
    await h.startWorker(4);
  });
  afterAll(async () => {
    await h.close();
  });

  const metadataCounts = (scene: string): Record<string, number> =>
    Object.fromEntries(Object.entries(h.sim.counters().metadataFiles).filter(([k]) => k.startsWith(`${scene}/`)).map(([k, v]) => [k.slice(scene.length + 1), v]));

  it('six jobs of three tenants for one new product: each metadata file is read once, parsed and stored; bands are counted alone', async () => {
    const bands = [['B04', 'B08'], ['B02'], ['SCL', 'B04'], ['B03'], ['B08', 'B02'], ['B11']];
    const res = await Promise.all(bands.map((b, i) => h.enqueue({ tenant_id: ['alpha', 'bravo', 'charlie'][i % 3], scene_id: L2A, bands: b })));
    const rows = await h.waitForJobs(res.map((r) => r.body.job_id!));
    expect(rows.map((r) => r.status)).toEqual(Array(6).fill('completed'));

    const product = parseProductName(L2A);
    const counts = metadataCounts(L2A);
    expect(Object.keys(counts).sort()).toEqual([expect.stringMatching(/^GRANULE\/L2A_T32TNS_A\d{6}_\d{8}T\d{6}\/MTD_TL\.xml$/), 'MTD_MSIL2A.xml']);
    expect(Object.values(counts)).toEqual([1, 1]);
    // Band counters hold the seven distinct band files only, each downloaded once.
    const distinct = new Set(bands.flat());
    expect(h.sim.counters().products[L2A]).toMatchObject({ started: distinct.size, completed: distinct.size });

    const stored = await findUpstreamProduct(h.db, L2A);
    const grid = tileGridOf(product.tile);
    expect(stored?.granuleMetadata?.error).toBeUndefined();
    expect(stored?.granuleMetadata?.tile?.epsg).toBe(grid.epsg);
    expect(stored?.granuleMetadata?.tile?.grids).toEqual(grid.grids);
    expect(stored?.granuleMetadata?.product?.processingBaseline).toBe('05.10');
    expect(stored?.granuleMetadata?.sources?.product).toBe('MTD_MSIL2A.xml');
    expect(stored?.sensedAt?.toISOString().slice(0, 19)).toBe(product.sensingTime.toISOString().slice(0, 19));
    expect(stored?.footprint?.type).toBe('Polygon');
    const box = await h.db.selectFrom('upstream_products').select(['bbox_west', 'bbox_south', 'bbox_east', 'bbox_north']).where('scene_id', '=', L2A).executeTakeFirstOrThrow();
    expect(box.bbox_west!).toBeLessThan(box.bbox_east!);
    expect(box.bbox_south!).toBeLessThan(box.bbox_north!);
  });

  it('a product stored before its metadata files were read is prepared once more: metadata read, manifest kept', async () => {
    const first = await h.enqueue({ tenant_id: 'alpha', scene_id: L1C, bands: ['B04'] });
    await h.waitForJobs([first.body.job_id!]);
    expect(Object.values(metadataCounts(L1C))).toEqual([1, 1]);
    // As a row written before migration 0008 looks.
    await sql`UPDATE upstream_products SET granule_metadata = NULL, sensed_at = NULL WHERE scene_id = ${L1C}`.execute(h.db);
    const manifestsBefore = h.sim.counters().manifestRequests;

    const again = await Promise.all(['B02', 'B03'].map((band, i) => h.enqueue({ tenant_id: ['bravo', 'charlie'][i], scene_id: L1C, bands: [band] })));
    const rows = await h.waitForJobs(again.map((r) => r.body.job_id!));
    expect(rows.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(Object.values(metadataCounts(L1C))).toEqual([2, 2]);
    expect(h.sim.counters().manifestRequests).toBe(manifestsBefore);
    const stored = await findUpstreamProduct(h.db, L1C);
    expect(stored?.granuleMetadata?.tile?.epsg).toBe(tileGridOf('46RER').epsg);
    expect(stored?.granuleMetadata?.product?.processingBaseline).toBe('03.01');
    expect(stored?.granuleMetadata?.product?.cloudCoverage).toBe(h.sim.productMetadata(L1C).cloudCover);
    expect(stored?.sensedAt).toBeInstanceOf(Date);
  });
});
