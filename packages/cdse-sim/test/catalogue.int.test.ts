// The catalogue host against the real search results (fixtures eodag_cop_dataspace_odata_search_S2_L1C.json, ...).
import { productIdOf, startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { fixture, L1C, L2A, lookup } from './helpers.js';

const realL1C = (JSON.parse(fixture('eodag_cop_dataspace_odata_search_S2_L1C.json')) as { value: Record<string, unknown>[] }).value[0]!;
const MISSING = 'S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825';

describe('catalogue: Products?$filter=Name eq', () => {
  let sim: CdseSim;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.001, logLevel: 'silent', unknownProducts: [`${MISSING}.SAFE`] });
  });
  afterAll(() => sim.close());

  it('answers the real entity shape (same fields, same order) for any valid name', async () => {
    const res = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent(`Name eq '${L1C}.SAFE'`)}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { '@odata.context': string; value: Record<string, unknown>[] };
    expect(body['@odata.context']).toBe('$metadata#Products');
    expect(body.value).toHaveLength(1);
    const p = body.value[0]!;
    const realKeys = Object.keys(realL1C).filter((k) => k !== 'Attributes' && k !== 'Assets');
    expect(Object.keys(p)).toEqual(realKeys);
    expect(p).toMatchObject({
      Id: productIdOf(`${L1C}.SAFE`),
      Name: `${L1C}.SAFE`,
      Online: true,
      S3Path: `/eodata/Sentinel-2/MSI/L1C/2024/12/09/${L1C}.SAFE`,
      ContentDate: { Start: '2024-12-09T16:26:09.024000Z', End: '2024-12-09T16:26:09.024000Z' },
    });
    expect(p.Id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect((p.Checksum as { Algorithm: string }[]).map((c) => c.Algorithm)).toEqual(['MD5', 'BLAKE3']);
    expect(p.Footprint).toMatch(/^geography'SRID=4326;POLYGON \(\(.+\)\)'$/);
    // ContentLength: every file of the product, band files scaled, plus the manifest.
    const bands = await sim.productFiles(L1C);
    expect(p.ContentLength).toBeGreaterThan(bands.reduce((s, f) => s + f.size, 0));
    expect(sim.productId(L1C)).toBe(p.Id);
  });

  it('$expand=Attributes adds typed attributes and names them in the context', async () => {
    const res = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent(`Name eq '${L2A}.SAFE'`)}&$expand=Attributes&$count=true`);
    const body = (await res.json()) as { '@odata.context': string; '@odata.count': number; value: { Attributes: { Name: string; Value: unknown }[] }[] };
    expect(body['@odata.context']).toBe('$metadata#Products(Attributes())');
    expect(body['@odata.count']).toBe(1);
    const attrs = Object.fromEntries(body.value[0]!.Attributes.map((a) => [a.Name, a.Value]));
    expect(attrs).toMatchObject({ tileId: '32TNS', productType: 'S2MSI2A', processingLevel: 'S2MSI2A', relativeOrbitNumber: 65, platformSerialIdentifier: 'B', processorVersion: '05.10' });
    expect(attrs.cloudCover).toEqual(expect.any(Number));
  });

  it.each([
    ['a configured unknown product', `${MISSING}.SAFE`],
    ['a missing discriminator (99991231T235959)', 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_99991231T235959.SAFE'],
    ['a name without .SAFE (catalogue names carry it)', L2A],
    ['an invalid product name', 'S2B_MSIL2A_nope.SAFE'],
  ])('%s → value: []', async (_why, name) => {
    const res = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent(`Name eq '${name}'`)}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ '@odata.context': '$metadata#Products', value: [] });
    expect(await lookup(sim, MISSING)).toBeUndefined();
  });

  it('a filter it does not understand → 400 with detail; $skip over 10000 → the documented 422', async () => {
    const bad = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent("Nam eq 'x'")}`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: { message: string } }).detail.message).toMatch(/Invalid filter/);
    const skip = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent(`Name eq '${L2A}.SAFE'`)}&$skip=10001`);
    expect(skip.status).toBe(422);
    expect(((await skip.json()) as { detail: { loc: string[] }[] }).detail[0]!.loc).toEqual(['query', '$skip']);
  });

  it('Products(<Id>) is the entity; Products(<Id>)/$value redirects 301 to the download host', async () => {
    const id = sim.productId(L2A);
    const entity = (await (await fetch(`${sim.urls.catalogueUrl}/Products(${id})`)).json()) as Record<string, unknown>;
    expect(entity).toMatchObject({ Id: id, Name: `${L2A}.SAFE` });
    const res = await fetch(`${sim.urls.catalogueUrl}/Products(${id})/$value`, { redirect: 'manual' });
    expect(res.status).toBe(301);
    expect(res.headers.get('content-type')).toBe('text/html');
    expect(res.headers.get('content-length')).toBe('162'); // as in catalogue_value_301_redirect_to_zipper_headers.txt
    expect(res.headers.get('location')).toBe(`${sim.urls.downloadUrl}/Products(${id})/$value`);
    expect((await fetch(`${sim.urls.catalogueUrl}/Products(00000000-0000-5000-8000-000000000000)`)).status).toBe(404);
  });

  it('counts catalogue requests', async () => {
    sim.resetCounters();
    await lookup(sim, L1C);
    await lookup(sim, L2A);
    expect(sim.counters().catalogueRequests).toBe(2);
  });
});
