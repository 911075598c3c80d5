// Pure: a tile's UTM CRS and grids from its MGRS id, checked against the two real MTD_TL.xml.
import { parseTileMetadata } from '@scenecache/core';
import { tileGridOf } from '../src/tile-grid.js';
import { fixture } from './helpers.js';

describe('tileGridOf', () => {
  it.each([
    ['01KAB', 'stactools_S2_L2A_MTD_TL.xml', 32701, 'WGS84 / UTM zone 01S', 99960, 8200000],
    ['46RER', 'stactools_S2_L1C_MTD_TL.xml', 32646, 'WGS84 / UTM zone 46N', 499980, 3100020],
  ] as const)('%s: the CRS and the 10/20/60 m grids of the real %s', (tile, file, epsg, csName, ulx, uly) => {
    const g = tileGridOf(tile);
    expect(g).toMatchObject({ epsg, csName, ulx, uly });
    const xml = fixture(file);
    expect(xml).toContain(`<HORIZONTAL_CS_NAME>${csName}</HORIZONTAL_CS_NAME>`);
    const real = parseTileMetadata(xml);
    expect(real.epsg).toBe(g.epsg);
    expect(g.grids).toEqual(real.grids);
  });

  it.each([
    // zone, band → hemisphere; column set per zone mod 3; row letters offset by 5 in even zones
    ['32TNS', 32632, 499980, 5200020],
    ['17UPV', 32617, 600000, 6000000],
    ['31UDQ', 32631, 399960, 5500020],
    ['55HBU', 32755, 199980, 5900020],
    ['60CWS', 32760, 499980, 1200040],
    ['01NAA', 32601, 99960, 100020],
    ['01MAV', 32701, 99960, 10000000],
  ] as const)('%s → EPSG %d, ULX %d, ULY %d', (tile, epsg, ulx, uly) => {
    expect(tileGridOf(tile)).toMatchObject({ epsg, ulx, uly, hemisphere: epsg < 32700 ? 'N' : 'S' });
  });

  it('puts the corner on the 60 m lattice (counted from the equator), shared by every resolution', () => {
    for (const tile of ['01KAB', '46RER', '32TNS', '55HBU', '12SUC', '38MPV', '20XNS']) {
      const g = tileGridOf(tile);
      const falseNorthing = g.hemisphere === 'S' ? 10_000_000 : 0;
      expect(Number.isInteger(g.ulx / 60)).toBe(true);
      expect(Number.isInteger((g.uly - falseNorthing) / 60)).toBe(true);
      expect(Object.keys(g.grids)).toEqual(['10', '20', '60']);
      for (const [res, grid] of Object.entries(g.grids)) {
        const r = Number(res);
        expect(grid.shape).toEqual([109_800 / r, 109_800 / r]);
        expect(grid.transform).toEqual([r, 0, g.ulx, 0, -r, g.uly]);
        expect(grid.bbox).toEqual([g.ulx, g.uly - 109_800, g.ulx + 109_800, g.uly]);
      }
    }
  });

  it('rejects what is not an MGRS tile', () => {
    for (const bad of ['', '1KAB', '61KAB', '00KAB', '01IAB', '01KIB', '01KAW', 'XXKAB']) expect(() => tileGridOf(bad)).toThrow(RangeError);
  });
});
