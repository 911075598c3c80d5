import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseSafeManifest, findBandFile, resolveBand } from '@scenecache/core';
import { encodeNodeKey, nodeListUrl, nodeValueUrl, productNodePath, safePathSegments } from '../src/nodes-path.js';

const manifest = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../fixtures/cdse/${name}`, import.meta.url)), 'utf8');
const BASE = 'https://download.dataspace.copernicus.eu/odata/v1';
const ID = 'db0c8ef3-8ec0-5185-a537-812dad3c58f8';

describe('nodeValueUrl', () => {
  it('builds the documented L1C band URL from a real manifest path', () => {
    const files = parseSafeManifest(manifest('cdsetool_S2_L1C_manifest.safe.xml'));
    const b04 = findBandFile(files, resolveBand('L1C', 'B04'))!;
    const safe = 'S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414.SAFE';
    const [, granule, , file] = b04.path.split('/');
    expect(nodeValueUrl(BASE, ID, safe, b04.path)).toBe(
      `${BASE}/Products(${ID})/Nodes(${safe})/Nodes(GRANULE)/Nodes(${granule})/Nodes(IMG_DATA)/Nodes(${file})/$value`,
    );
  });

  it('builds the L2A band URL with the resolution folder', () => {
    const files = parseSafeManifest(manifest('stactools_S2_L2A_manifest.safe.xml'));
    const b04 = findBandFile(files, resolveBand('L2A', 'B04'))!;
    const url = nodeValueUrl(`${BASE}/`, ID, 'X.SAFE', `./${b04.path}`);
    expect(url).toMatch(new RegExp(`^${BASE.replace(/[.]/g, '\\.')}/Products\\(${ID}\\)/Nodes\\(X\\.SAFE\\)/Nodes\\(GRANULE\\)/Nodes\\(L2A_[^)]+\\)/Nodes\\(IMG_DATA\\)/Nodes\\(R10m\\)/Nodes\\([^)]+_B04_10m\\.jp2\\)/\\$value$`));
  });

  it('puts manifest.safe right under the SAFE folder', () => {
    expect(nodeValueUrl(BASE, ID, 'P.SAFE', 'manifest.safe')).toBe(`${BASE}/Products(${ID})/Nodes(P.SAFE)/Nodes(manifest.safe)/$value`);
  });

  it('lists children with …/Nodes', () => {
    expect(nodeListUrl(BASE, ID, 'P.SAFE')).toBe(`${BASE}/Products(${ID})/Nodes(P.SAFE)/Nodes`);
    expect(nodeListUrl(BASE, ID, 'P.SAFE', 'GRANULE')).toBe(`${BASE}/Products(${ID})/Nodes(P.SAFE)/Nodes(GRANULE)/Nodes`);
  });

  it('matches the Nodes uri of the real documented listing', () => {
    const listing = JSON.parse(manifest('cdse_docs_nodes_listing_S2_L1C_root.json')) as { result: { Name: string; Nodes: { uri: string } }[] };
    const entry = listing.result[0]!;
    expect(nodeListUrl(BASE, ID, entry.Name)).toBe(entry.Nodes.uri);
  });
});

describe('encoding', () => {
  it('encodes characters that would break Nodes(...) or a URL', () => {
    expect(encodeNodeKey("a(b)c'd e/f#g?h%")).toBe('a%28b%29c%27d%20e%2Ff%23g%3Fh%25');
    expect(productNodePath('id', 'S.SAFE', 'A B/c(d).jp2')).toBe('Products(id)/Nodes(S.SAFE)/Nodes(A%20B)/Nodes(c%28d%29.jp2)');
  });

  it.each(['', '/abs', 'a//b', 'a/../b', './a/./b', 'a/'])('rejects the unsafe path %j', (p) => {
    expect(() => safePathSegments(p)).toThrow(/invalid SAFE-relative path/);
  });

  it('accepts a leading ./ as manifests write it', () => {
    expect(safePathSegments('./GRANULE/x/IMG_DATA/y.jp2')).toEqual(['GRANULE', 'x', 'IMG_DATA', 'y.jp2']);
  });
});
