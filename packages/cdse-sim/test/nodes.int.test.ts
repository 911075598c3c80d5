// Nodes listings (fixture cdse_docs_nodes_listing_S2_L1C_root.json) and walking a product to a band file.
import { startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { bandPath, collect, fixture, L1C, L2A, lookup, nodeUrl } from './helpers.js';

type Listing = { result: { Id: string; Name: string; ContentLength: number; ChildrenNumber: number; Nodes: { uri: string } }[] };
const realRoot = JSON.parse(fixture('cdse_docs_nodes_listing_S2_L1C_root.json')) as Listing;

describe('Nodes listings', () => {
  let sim: CdseSim;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.001, logLevel: 'silent' });
  });
  afterAll(() => sim.close());

  it('lists the product root like the documented example, without a token', async () => {
    const p = (await lookup(sim, L1C))!;
    const res = await fetch(`${sim.urls.downloadUrl}/Products(${p.Id as string})/Nodes`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Listing;
    expect(Object.keys(body)).toEqual(Object.keys(realRoot));
    expect(body.result).toHaveLength(1);
    expect(Object.keys(body.result[0]!)).toEqual(Object.keys(realRoot.result[0]!));
    expect(body.result[0]).toEqual({
      Id: `${L1C}.SAFE`,
      Name: `${L1C}.SAFE`,
      ContentLength: 0,
      ChildrenNumber: expect.any(Number) as number,
      Nodes: { uri: `${sim.urls.downloadUrl}/Products(${p.Id as string})/Nodes(${L1C}.SAFE)/Nodes` },
    });
  });

  it.each([
    [L1C, '_B04.jp2', ['GRANULE', /^L1C_T17UPV_A\d{6}_20241209T162603$/, 'IMG_DATA', 'T17UPV_20241209T162609_B04.jp2']],
    [L2A, '_B04_10m.jp2', ['GRANULE', /^L2A_T32TNS_A\d{6}_20240324T101652$/, 'IMG_DATA', 'R10m', 'T32TNS_20240324T101649_B04_10m.jp2']],
  ] as const)('walks %s down to its %s band by following Nodes.uri', async (name, suffix, expected) => {
    let uri = nodeUrl(sim, name, '', '/Nodes');
    const names: string[] = [];
    for (const want of expected) {
      const body = (await (await fetch(uri)).json()) as Listing;
      const hit = body.result.find((e) => (typeof want === 'string' ? e.Name === want : want.test(e.Name)));
      expect(hit).toBeDefined();
      names.push(hit!.Name);
      uri = hit!.Nodes.uri;
    }
    const path = names.join('/');
    expect(path).toBe(await bandPath(sim, name, suffix));
    // The leaf's ContentLength is the served size, and it has no children.
    const parent = (await (await fetch(nodeUrl(sim, name, names.slice(0, -1).join('/'), '/Nodes'))).json()) as Listing;
    const leaf = parent.result.find((e) => e.Name === names.at(-1))!;
    const file = (await sim.productFiles(name)).find((f) => f.path === path)!;
    expect(leaf).toMatchObject({ ContentLength: file.size, ChildrenNumber: 0 });
  });

  it('lists manifest.safe at the SAFE root with its served size', async () => {
    const body = (await (await fetch(nodeUrl(sim, L2A, '', '/Nodes'))).json()) as Listing;
    const names = body.result.map((e) => e.Name);
    expect(names).toEqual(expect.arrayContaining(['GRANULE', 'DATASTRIP', 'manifest.safe', 'MTD_MSIL2A.xml']));
    const manifest = body.result.find((e) => e.Name === 'manifest.safe')!;
    expect(manifest.ContentLength).toBe((await collect(sim.fileBytes(L2A, 'manifest.safe'))).length);
  });

  it('unknown product Ids and paths → 404 with a detail', async () => {
    const unknownId = await fetch(`${sim.urls.downloadUrl}/Products(0badc0de-0000-5000-8000-000000000000)/Nodes`);
    expect(unknownId.status).toBe(404);
    expect(await unknownId.json()).toHaveProperty('detail');
    const unknownPath = await fetch(nodeUrl(sim, L2A, 'GRANULE/nope', '/Nodes'));
    expect(unknownPath.status).toBe(404);
    expect(await unknownPath.json()).toHaveProperty('detail');
    // A SAFE name that does not belong to the Id is not found either.
    const mismatch = await fetch(`${sim.urls.downloadUrl}/Products(${sim.productId(L1C)})/Nodes(${L2A}.SAFE)/Nodes`);
    expect(mismatch.status).toBe(404);
  });
});
