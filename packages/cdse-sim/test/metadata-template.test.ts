// Pure: metadata files rendered from the real fixtures for any product, parsed by core as a client would.
import { createHash } from 'node:crypto';
import { parseProductLevelMetadata, parseProductName, parseSafeManifest, parseTileMetadata, type ProductLevel } from '@scenecache/core';
import { metadataIdentityOf } from '../src/metadata-identity.js';
import { loadMetadataTemplates, METADATA_TEMPLATE_FILES, type MetadataTemplates } from '../src/metadata-template.js';
import { DEFAULT_FIXTURES_DIR } from '../src/options.js';
import { loadSafeTemplates, renderSafeManifest, type SafeTemplate } from '../src/safe-template.js';
import { tileGridOf } from '../src/tile-grid.js';
import { fixture } from './helpers.js';

const FIXTURE_L2A = 'S2A_MSIL2A_20230821T221941_N0509_R029_T01KAB_20230822T021825';
const FIXTURE_L1C = 'S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248';
const sha3 = (b: Uint8Array): string => createHash('sha3-256').update(b).digest('hex');
const fixtureBytes = (name: string): Buffer => Buffer.from(fixture(name), 'utf8');

describe('metadata templates from the fixture metadata files', () => {
  let safe: Record<ProductLevel, SafeTemplate>;
  let md: Record<ProductLevel, MetadataTemplates>;
  beforeAll(async () => {
    [safe, md] = await Promise.all([loadSafeTemplates(DEFAULT_FIXTURES_DIR), loadMetadataTemplates(DEFAULT_FIXTURES_DIR)]);
  });
  const render = (name: string, kind: 'tile' | 'product'): { xml: string; bytes: Buffer; size: number } => {
    const p = parseProductName(name);
    const id = metadataIdentityOf(p, safe[p.level], md[p.level].source);
    const bytes = md[p.level][kind].render(id);
    return { xml: bytes.toString('utf8'), bytes, size: md[p.level][kind].byteSize(id) };
  };

  it('read each fixture product identity from its product metadata file', () => {
    expect(md.L2A.source).toMatchObject({ safeName: `${FIXTURE_L2A}.SAFE`, tile: '01KAB', sensing: '20230821T221941', granuleTime: '20230821T221944', processing: '20230822T021825', absoluteOrbit: 42640, centre: '2APS', baseline: '05.09', relativeOrbit: 29, cloudCover: 59.050727 });
    expect(md.L1C.source).toMatchObject({ safeName: `${FIXTURE_L1C}.SAFE`, tile: '46RER', sensing: '20210908T042701', granuleTime: '20210908T043714', processing: '20210908T070248', absoluteOrbit: 32448, centre: 'VGS4', baseline: '03.01', relativeOrbit: 133, cloudCover: 88.2972 });
  });

  it('render the L2A fixture product byte-identical to the fixtures, with the SHA3-256 its real manifest lists', () => {
    const real = parseSafeManifest(fixture('stactools_S2_L2A_manifest.safe.xml'));
    for (const kind of ['tile', 'product'] as const) {
      const { bytes, size } = render(FIXTURE_L2A, kind);
      expect(bytes.equals(fixtureBytes(METADATA_TEMPLATE_FILES.L2A[kind]))).toBe(true);
      expect(size).toBe(bytes.length);
      const entry = real.find((f) => (kind === 'tile' ? f.path.endsWith('/MTD_TL.xml') : f.path === 'MTD_MSIL2A.xml'))!;
      expect({ size: bytes.length, sha3: sha3(bytes) }).toEqual({ size: entry.size, sha3: entry.sha3_256 });
    }
    expect(sha3(render(FIXTURE_L2A, 'tile').bytes)).toBe('bd8df441e1f403fa9ad1255705f2435b3ebd284e6fedc3c60366b4d5df95edc4');
  });

  it.each([
    ['S2C_MSIL2A_20250102T101419_N0511_R022_T32TNR_20250102T140055', 32632],
    ['S2B_MSIL2A_20240324T101649_N0510_R065_T55HBU_20240324T130035', 32755],
    ['S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414', 32617],
    ['S2A_MSIL1C_20200808T010311_N0500_R045_T54PXA_20230413T212505', 32654],
  ] as const)('%s: the product identity throughout, parsed by core as the grid of its tile', (name, epsg) => {
    const p = parseProductName(name);
    const src = md[p.level].source;
    const tile = render(name, 'tile');
    const product = render(name, 'product');
    for (const r of [tile, product]) expect(r.size).toBe(r.bytes.length);
    // The identity-bearing places name the product; no trace of the fixture product remains there.
    const version = `${p.baseline.slice(1, 3)}.${p.baseline.slice(3)}`;
    expect(tile.xml).toMatch(new RegExp(`<TILE_ID metadataLevel="Brief">${p.mission}_OPER_MSI_${p.level}_TL_${p.mission.slice(1)}PS_${p.discriminator}_A\\d{6}_T${p.tile}_N${version}</TILE_ID>`));
    expect(product.xml).toContain(`<PRODUCT_URI>${p.safeName}</PRODUCT_URI>`);
    expect(product.xml).toContain(`<SPACECRAFT_NAME>Sentinel-2${p.mission.slice(2)}</SPACECRAFT_NAME>`);
    expect(product.xml).toContain(`<SENSING_ORBIT_NUMBER>${p.relativeOrbit}</SENSING_ORBIT_NUMBER>`);
    expect(product.xml).toContain(`<PRODUCT_START_TIME>${p.sensingTime.toISOString().slice(0, 19)}.024Z</PRODUCT_START_TIME>`);
    for (const xml of [tile.xml, product.xml]) {
      const tokens = [src.tile, src.granuleTime, src.sensing, src.processing, `A0${src.absoluteOrbit}`, `_${src.centre}_`, `N${src.baseline}`];
      if (p.mission !== src.mission) tokens.push(`${src.mission}_OPER_MSI`);
      for (const token of tokens) {
        expect(xml).not.toContain(token);
      }
    }
    // What a client parses.
    const parsedTile = parseTileMetadata(tile.xml);
    const grid = tileGridOf(p.tile);
    expect(parsedTile.epsg).toBe(epsg);
    expect(parsedTile.grids).toEqual(grid.grids);
    expect(parsedTile.grids['10']!.shape).toEqual([10980, 10980]);
    expect(parsedTile.grids['60']!.shape).toEqual([1830, 1830]);
    const parsedProduct = parseProductLevelMetadata(product.xml);
    expect(parsedProduct.processingBaseline).toBe(version);
    expect(parsedProduct.cloudCoverage).toBe(parsedTile.cloudyPixelPercentage);
    expect(parsedProduct.cloudCoverage).toBeGreaterThanOrEqual(0);
    expect(parsedProduct.cloudCoverage).toBeLessThanOrEqual(100);
    // Sun angles stay the fixture's.
    expect(parsedTile.sunZenith).toBe(parseTileMetadata(fixture(METADATA_TEMPLATE_FILES[p.level].tile)).sunZenith);
  });

  it.each(['S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035', 'S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414'])(
    '%s: the product file lists the band files of the manifest the sim serves, and the tile file sits in its granule',
    (name) => {
      const p = parseProductName(name);
      const manifest = parseSafeManifest(renderSafeManifest(p, safe[p.level]));
      const images = [...render(name, 'product').xml.matchAll(/<IMAGE_FILE>([^<]+)<\/IMAGE_FILE>/g)].map((m) => `${m[1]!}.jp2`);
      expect(images.length).toBeGreaterThan(10);
      const paths = new Set(manifest.map((f) => f.path));
      expect(images.filter((x) => !paths.has(x))).toEqual([]);
      const granule = manifest.find((f) => f.path.endsWith('/MTD_TL.xml'))!.path.split('/')[1]!;
      expect(render(name, 'tile').xml).toContain(`<MASK_FILENAME bandId="0" type="MSK_DETFOO">GRANULE/${granule}/QI_DATA/`);
    },
  );
});
