// Real sizes (sizeScale 1): band sizes are the real manifest's, and a 135 MB band matches its SHA3.
import { parseSafeManifest } from '@scenecache/core';
import { startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { accessToken, fixture, getFile, L1C, nodeUrl } from './helpers.js';
import { createHash } from 'node:crypto';

const realFiles = parseSafeManifest(fixture('cdsetool_S2_L1C_manifest.safe.xml'));
const bandName = (path: string): string => path.slice(path.lastIndexOf('_') + 1);

describe('a real-size L1C product', () => {
  let sim: CdseSim;
  beforeAll(async () => {
    sim = await startCdseSim({ logLevel: 'silent' });
  });
  afterAll(() => sim.close());

  it('serves a manifest whose band sizes are the real ones (10 m bands 118–136 MB), hashed in seconds', async () => {
    const t0 = Date.now();
    const res = await getFile(nodeUrl(sim, L1C, 'manifest.safe'), await accessToken(sim));
    const files = parseSafeManifest(await res.text());
    const ms = Date.now() - t0;
    const bands = files.filter((f) => f.path.includes('/IMG_DATA/'));
    expect(bands).toHaveLength(14);
    for (const b of bands) {
      const real = realFiles.find((f) => f.path.includes('/IMG_DATA/') && bandName(f.path) === bandName(b.path))!;
      expect(b.size).toBe(real.size);
      expect(b.sha3_256).not.toBe(real.sha3_256);
    }
    for (const b of bands.filter((f) => /_B0[2348]\.jp2$/.test(f.path))) {
      expect(b.size).toBeGreaterThanOrEqual(118e6);
      expect(b.size).toBeLessThanOrEqual(136e6);
    }
    // Non-band entries the sim does not serve keep the real size and checksum; metadata files are the ones served.
    expect(files.find((f) => f.path === 'INSPIRE.xml')).toEqual(realFiles.find((f) => f.path === 'INSPIRE.xml'));
    expect(files.filter((f) => /MTD_(TL|MSIL1C)\.xml$/.test(f.path))).toEqual(await sim.metadataFiles(L1C));
    const total = bands.reduce((s, b) => s + b.size, 0);
    console.log(`SHA3-256 of ${(total / 1e6).toFixed(0)} MB of L1C band files: ${ms} ms`);
    expect(ms).toBeLessThan(30_000);
  });

  it('streams a 135 MB band whose SHA3-256 matches the manifest', async () => {
    const file = (await sim.productFiles(L1C)).find((f) => f.path.endsWith('_B02.jp2'))!;
    const res = await getFile(nodeUrl(sim, L1C, file.path), await accessToken(sim));
    const hash = createHash('sha3-256');
    let n = 0;
    for await (const chunk of res.body! as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      n += chunk.length;
    }
    expect(n).toBe(file.size);
    expect(hash.digest('hex')).toBe(file.sha3_256);
    expect(sim.downloadsOf(L1C, '_B02.jp2')).toMatchObject({ started: 1, completed: 1, bytes: file.size });
  });
});
