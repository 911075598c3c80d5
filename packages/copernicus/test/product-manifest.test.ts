import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseSafeManifest, resolveBand, bandsForLevel } from '@scenecache/core';
import { locateBandFile } from '../src/product-manifest.js';

const manifest = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../fixtures/cdse/${name}`, import.meta.url)), 'utf8');

describe('locateBandFile on the real manifests', () => {
  const l1c = parseSafeManifest(manifest('cdsetool_S2_L1C_manifest.safe.xml'));
  const l2a = parseSafeManifest(manifest('stactools_S2_L2A_manifest.safe.xml'));

  it.each(bandsForLevel('L1C').map((b) => b.id))('L1C %s is found with size and sha3', (id) => {
    const f = locateBandFile(l1c, resolveBand('L1C', id), 'P.SAFE');
    expect(f.path).toMatch(/^GRANULE\/[^/]+\/IMG_DATA\/[^/]+\.jp2$/);
    expect(f.size).toBeGreaterThan(0);
    expect(f.sha3_256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('L2A B04 is the R10m file', () => {
    expect(locateBandFile(l2a, resolveBand('L2A', 'B04'), 'P.SAFE').path).toMatch(/\/IMG_DATA\/R10m\/[^/]+_B04_10m\.jp2$/);
  });

  it('a band the product lacks is band_not_in_product (not retryable)', () => {
    const withoutB04 = l2a.filter((f) => !f.path.endsWith('_B04_10m.jp2'));
    expect(() => locateBandFile(withoutB04, resolveBand('L2A', 'B04'), 'P.SAFE')).toThrow(
      expect.objectContaining({ code: 'band_not_in_product', retryable: false }) as Error,
    );
  });
});
