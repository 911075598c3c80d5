import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MetadataParseError, metadataFilesOf, parseProductLevelMetadata, parseSafeManifest, parseTileMetadata } from '../src/index.js';

const fixture = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../fixtures/cdse/${name}`, import.meta.url)), 'utf8');

describe('parseTileMetadata (real MTD_TL.xml)', () => {
  it('reads the T01KAB L2A grid: EPSG 32701, 10 m shape [10980, 10980], transform [10, 0, 99960, 0, -10, 8200000]', () => {
    const tile = parseTileMetadata(fixture('stactools_S2_L2A_MTD_TL.xml'));
    expect(tile.epsg).toBe(32701);
    expect(tile.grids['10']).toEqual({ shape: [10980, 10980], transform: [10, 0, 99960, 0, -10, 8200000], bbox: [99960, 8090200, 209760, 8200000] });
    expect(tile.grids['20']).toEqual({ shape: [5490, 5490], transform: [20, 0, 99960, 0, -20, 8200000], bbox: [99960, 8090200, 209760, 8200000] });
    expect(tile.grids['60']).toEqual({ shape: [1830, 1830], transform: [60, 0, 99960, 0, -60, 8200000], bbox: [99960, 8090200, 209760, 8200000] });
    expect(tile.sunZenith).toBeCloseTo(38.4174390061789, 12);
    expect(tile.sunAzimuth).toBeCloseTo(43.3009058473725, 12);
    expect(tile.cloudyPixelPercentage).toBe(59.050727);
  });

  it('reads the T46RER L1C grid', () => {
    const xml = fixture('stactools_S2_L1C_MTD_TL.xml');
    const code = /<HORIZONTAL_CS_CODE>EPSG:(\d+)</.exec(xml)![1];
    const ulx = /<Geoposition resolution="10">\s*<ULX>(\d+)<\/ULX>\s*<ULY>(\d+)<\/ULY>/.exec(xml)!;
    const tile = parseTileMetadata(xml);
    expect(tile.epsg).toBe(Number(code));
    expect(tile.grids['10']?.transform).toEqual([10, 0, Number(ulx[1]), 0, -10, Number(ulx[2])]);
    expect(tile.grids['60']?.shape).toEqual([1830, 1830]);
    expect(tile.cloudyPixelPercentage).toBe(88.2972);
  });

  it('rejects a file without a CRS code or without any grid, and malformed XML', () => {
    const xml = fixture('stactools_S2_L2A_MTD_TL.xml');
    expect(() => parseTileMetadata(xml.replace(/<HORIZONTAL_CS_CODE>[^<]*</, '<HORIZONTAL_CS_CODE>UTM01S<'))).toThrow(MetadataParseError);
    expect(() => parseTileMetadata(xml.replace(/<Geoposition resolution="\d+">[\s\S]*?<\/Geoposition>/g, ''))).toThrow(/no complete Size\/Geoposition/);
    expect(() => parseTileMetadata('<a><b></a>')).toThrow(MetadataParseError);
  });
});

describe('parseProductLevelMetadata (real MTD_MSIL*.xml)', () => {
  it('reads the processing baseline and the cloud coverage', () => {
    expect(parseProductLevelMetadata(fixture('stactools_S2_L2A_MTD_MSIL2A.xml'))).toEqual({ processingBaseline: '05.09', cloudCoverage: 59.050727 });
    expect(parseProductLevelMetadata(fixture('stactools_S2_L1C_MTD_MSIL1C.xml'))).toEqual({ processingBaseline: '03.01', cloudCoverage: 88.2972 });
  });
});

describe('metadataFilesOf', () => {
  it('finds MTD_TL.xml and MTD_MSIL2A.xml in the real manifest, with the sizes of the real files', () => {
    const files = metadataFilesOf(parseSafeManifest(fixture('stactools_S2_L2A_manifest.safe.xml')))!;
    expect(files.tile.path).toBe('GRANULE/L2A_T01KAB_A042640_20230821T221944/MTD_TL.xml');
    expect(files.tile.size).toBe(Buffer.byteLength(fixture('stactools_S2_L2A_MTD_TL.xml')));
    expect(files.product.path).toBe('MTD_MSIL2A.xml');
    expect(files.product.size).toBe(Buffer.byteLength(fixture('stactools_S2_L2A_MTD_MSIL2A.xml')));
    expect(metadataFilesOf(parseSafeManifest(fixture('stactools_S2_L1C_manifest.safe.xml')))?.product.path).toBe('MTD_MSIL1C.xml');
    expect(metadataFilesOf([])).toBeUndefined();
  });
});
