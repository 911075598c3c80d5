// Metadata files on the download host: real XML (MTD_TL.xml, MTD_MSIL*.xml) whose size and SHA3-256
// the served manifest lists, with the product's tile grid; counted apart from band downloads.
import { metadataFilesOf, parseProductLevelMetadata, parseSafeManifest, parseTileMetadata, type SafeFile } from '@scenecache/core';
import { startCdseSim, type CdseSim, type SimCounters } from '@scenecache/cdse-sim';
import { accessToken, bandPath, collect, fixture, getFile, L1C, L2A, nodeUrl, sha3 } from './helpers.js';

/** The L2A product of the fixture files (stactools_S2_L2A_*), tile 01KAB. */
const FIXTURE_L2A = 'S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825';
const FIXTURE_MTD_TL_SHA3 = 'bd8df441e1f403fa9ad1255705f2435b3ebd284e6fedc3c60366b4d5df95edc4';

describe('metadata files', () => {
  let sim: CdseSim;
  let token: string;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.001, logLevel: 'silent' });
    token = await accessToken(sim);
  });
  afterAll(() => sim.close());
  beforeEach(() => {
    sim.clearFaults();
    sim.resetCounters();
  });

  /** The served manifest's entries of `name`, and its raw text. */
  const manifestOf = async (name: string): Promise<{ xml: string; files: SafeFile[] }> => {
    const res = await getFile(nodeUrl(sim, name, 'manifest.safe'), token);
    expect(res.status).toBe(200);
    const xml = await res.text();
    return { xml, files: parseSafeManifest(xml) };
  };
  const get = async (name: string, path: string): Promise<Buffer> => {
    const res = await getFile(nodeUrl(sim, name, path), token);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(Number(res.headers.get('content-length'))).toBe(bytes.length);
    return bytes;
  };

  it('the fixture L2A product (01KAB): both files byte-identical to the fixtures, with the real SHA3-256', async () => {
    const { files } = await manifestOf(FIXTURE_L2A);
    const found = metadataFilesOf(files)!;
    expect(found.tile.path).toBe('GRANULE/L2A_T01KAB_A042640_20230821T221944/MTD_TL.xml');
    expect(found.product.path).toBe('MTD_MSIL2A.xml');
    expect(found.tile).toMatchObject({ size: 548_367, sha3_256: FIXTURE_MTD_TL_SHA3 });

    const tile = await get(FIXTURE_L2A, found.tile.path);
    expect(tile.equals(Buffer.from(fixture('stactools_S2_L2A_MTD_TL.xml'), 'utf8'))).toBe(true);
    expect(sha3(tile)).toBe(FIXTURE_MTD_TL_SHA3);
    const xml = tile.toString('utf8');
    for (const s of ['<HORIZONTAL_CS_CODE>EPSG:32701</HORIZONTAL_CS_CODE>', '<ULX>99960</ULX>', '<ULY>8200000</ULY>', '<NROWS>10980</NROWS>']) expect(xml).toContain(s);

    const product = await get(FIXTURE_L2A, 'MTD_MSIL2A.xml');
    expect(product.equals(Buffer.from(fixture('stactools_S2_L2A_MTD_MSIL2A.xml'), 'utf8'))).toBe(true);
    expect(found.product).toMatchObject({ size: 54_685, sha3_256: 'ead04b5bb063b45df4fbe1f2d55f35072e8fbc232f1a2c9c0d64ff4953eb4c40' });

    expect(sim.productMetadata(FIXTURE_L2A)).toMatchObject({ epsg: 32701, grid: { ulx: 99960, uly: 8200000 }, cloudCover: 59.050727, processingBaseline: '05.09' });
  });

  it.each([
    [L2A, '32TNS', 32632, '05.10'],
    [L1C, '17UPV', 32617, '05.11'],
  ] as const)('%s: size and SHA3-256 as the manifest lists them, the tile and EPSG of the product, counted as metadata', async (name, tile, epsg, baseline) => {
    const { xml: manifestXml, files } = await manifestOf(name);
    const found = metadataFilesOf(files)!;
    expect(await sim.metadataFiles(name)).toEqual([found.product, found.tile].sort((a, b) => files.indexOf(a) - files.indexOf(b)));
    const served: Record<string, Buffer> = {};
    for (const f of [found.tile, found.product]) {
      const bytes = await get(name, f.path);
      expect(bytes.length).toBe(f.size);
      expect(sha3(bytes)).toBe(f.sha3_256);
      // Upper-case hex, like real manifests.
      expect(manifestXml).toContain(`<checksum checksumName="SHA3-256">${f.sha3_256.toUpperCase()}</checksum>`);
      expect((await collect(sim.fileBytes(name, f.path))).equals(bytes)).toBe(true);
      served[f.path] = bytes;
    }
    expect(found.tile.path).toMatch(new RegExp(`^GRANULE/L(1C|2A)_T${tile}_A\\d{6}_\\d{8}T\\d{6}/MTD_TL\\.xml$`));

    const tileXml = served[found.tile.path]!.toString('utf8');
    expect(tileXml).toContain(`<HORIZONTAL_CS_CODE>EPSG:${epsg}</HORIZONTAL_CS_CODE>`);
    expect(tileXml).toMatch(new RegExp(`<TILE_ID metadataLevel="Brief">S2B_OPER_MSI_L(1C|2A)_TL_2BPS_\\d{8}T\\d{6}_A\\d{6}_T${tile}_N${baseline}</TILE_ID>`));
    const parsed = parseTileMetadata(tileXml);
    const expected = sim.productMetadata(name);
    expect(expected).toMatchObject({ sources: { tile: found.tile.path, product: found.product.path }, epsg, processingBaseline: baseline });
    expect(parsed.epsg).toBe(epsg);
    expect(parsed.grids).toEqual(expected.grid.grids);
    expect(parsed.grids['10']!.transform).toEqual([10, 0, expected.grid.ulx, 0, -10, expected.grid.uly]);
    const product = parseProductLevelMetadata(served[found.product.path]!.toString('utf8'));
    expect(product).toEqual({ processingBaseline: baseline, cloudCoverage: expected.cloudCover });
    expect(parsed.cloudyPixelPercentage).toBe(expected.cloudCover);

    // The catalogue states the same cloud cover.
    const search = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${encodeURIComponent(`Name eq '${name}.SAFE'`)}&$expand=Attributes`);
    const attrs = ((await search.json()) as { value: { Attributes: { Name: string; Value: unknown }[] }[] }).value[0]!.Attributes;
    expect(attrs.find((a) => a.Name === 'cloudCover')!.Value).toBe(expected.cloudCover);

    const c = sim.counters();
    expect(c.metadataRequests).toBe(2);
    expect(c.metadataFiles).toEqual({ [`${name}/${found.tile.path}`]: 1, [`${name}/${found.product.path}`]: 1 });
    expect(c).toMatchObject({ manifestRequests: 1, files: {}, products: {}, totals: { started: 0, completed: 0, bytes: 0 }, completedBy: {}, peakConcurrentDownloads: 0 });
    const overHttp = (await (await fetch(`${sim.url}/__sim/counters`)).json()) as SimCounters;
    expect(overHttp).toMatchObject({ metadataRequests: 2, metadataFiles: c.metadataFiles });
  });

  it('metadataFile() gives the served bytes with their path, size and SHA3-256', async () => {
    for (const kind of ['tile', 'product'] as const) {
      const f = sim.metadataFile(L2A, kind);
      const served = await get(L2A, f.path);
      expect(f.bytes.equals(served)).toBe(true);
      expect(f).toMatchObject({ size: served.length, sha3_256: sha3(served) });
    }
  });

  it('HEAD answers the size without counting; no token → 401; a band download still counts as before', async () => {
    const { path, size } = sim.metadataFile(L1C, 'tile');
    const head = await fetch(nodeUrl(sim, L1C, path), { method: 'HEAD', headers: { Authorization: `Bearer ${token}` } });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(size);
    expect((await fetch(nodeUrl(sim, L1C, path))).status).toBe(401);
    const ranged = await getFile(nodeUrl(sim, L1C, path), token, { Range: 'bytes=0-99' });
    expect(ranged.status).toBe(206);
    expect(await ranged.text()).toBe(sim.metadataFile(L1C, 'tile').bytes.subarray(0, 100).toString('utf8'));
    const band = await getFile(nodeUrl(sim, L1C, await bandPath(sim, L1C, '_B04.jp2')), token);
    await band.arrayBuffer();
    const c = sim.counters();
    expect(c).toMatchObject({ metadataRequests: 1, unauthorized401: 1, totals: { started: 1, completed: 1 } });
    expect(Object.keys(c.files)).toEqual([expect.stringMatching(/_B04\.jp2$/)]);
  });

  it('faults target metadata files on their own (target metadata), not through band faults', async () => {
    const { path, sha3_256: digest } = sim.metadataFile(L2A, 'tile');
    sim.addFault({ kind: 'status', status: 503, file: '_B04' }); // a band fault: not for metadata
    sim.addFault({ kind: 'status', status: 502, target: 'metadata', file: 'MTD_TL' });
    const first = await getFile(nodeUrl(sim, L2A, path), token);
    expect(first.status).toBe(502);
    await first.text();
    sim.addFault({ kind: 'corrupt', target: 'metadata' });
    const corrupt = Buffer.from(await (await getFile(nodeUrl(sim, L2A, path), token)).arrayBuffer());
    expect(sha3(corrupt)).not.toBe(digest);
    expect(sha3(Buffer.from(await (await getFile(nodeUrl(sim, L2A, path), token)).arrayBuffer()))).toBe(digest);
    expect(sim.counters().faultsApplied).toEqual({ status: 1, corrupt: 1 });
    expect(sim.faults()).toMatchObject([{ kind: 'status', status: 503, file: '_B04' }]);
  });

  it('lists the metadata files with their served size; other non-band files stay 404', async () => {
    const { path, size } = sim.metadataFile(L2A, 'tile');
    const parent = path.split('/').slice(0, -1).join('/');
    const listing = (await (await fetch(nodeUrl(sim, L2A, parent, '/Nodes'))).json()) as { result: { Name: string; ContentLength: number }[] };
    expect(listing.result.find((e) => e.Name === 'MTD_TL.xml')).toMatchObject({ ContentLength: size });
    for (const other of ['INSPIRE.xml', `${parent}/QI_DATA/FORMAT_CORRECTNESS.xml`]) {
      const res = await getFile(nodeUrl(sim, L2A, other), token);
      expect(res.status).toBe(404);
      expect(await res.json()).toHaveProperty('detail');
    }
  });
});

describe('metadata files, download slots and the rate limit', () => {
  it('stream at bytesPerSecond / sizeScale: real-size files take the time, next to scaled bands, they take on CDSE', async () => {
    const sim = await startCdseSim({ sizeScale: 0.01, bytesPerSecond: 100_000, logLevel: 'silent' });
    try {
      const token = await accessToken(sim);
      const { path, size } = sim.metadataFile(FIXTURE_L2A, 'tile');
      const t0 = Date.now();
      const res = await getFile(nodeUrl(sim, FIXTURE_L2A, path), token);
      expect((await res.arrayBuffer()).byteLength).toBe(size);
      // 548 kB at 10 MB/s: ~55 ms (at the unscaled 100 kB/s it would take 5.5 s).
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      await sim.close();
    }
  });

  it('take no slot by default, and one with manifestCountsAsDownload (429 when none is free)', async () => {
    for (const manifestCountsAsDownload of [false, true]) {
      const sim = await startCdseSim({ sizeScale: 0.01, bytesPerSecond: 100_000, maxConcurrentDownloads: 1, manifestCountsAsDownload, logLevel: 'silent' });
      try {
        const token = await accessToken(sim);
        const abort = new AbortController();
        const band = await getFile(nodeUrl(sim, L1C, await bandPath(sim, L1C, '_B02.jp2')), token, {}, abort.signal);
        expect(band.status).toBe(200);
        const res = await getFile(nodeUrl(sim, L1C, sim.metadataFile(L1C, 'product').path), token);
        expect(res.status).toBe(manifestCountsAsDownload ? 429 : 200);
        await res.arrayBuffer();
        abort.abort();
        await band.arrayBuffer().catch(() => undefined);
        expect(sim.counters()).toMatchObject({ peakConcurrentDownloads: 1, rejected429: manifestCountsAsDownload ? 1 : 0, metadataRequests: manifestCountsAsDownload ? 0 : 1 });
      } finally {
        await sim.close();
      }
    }
  });
});
