/**
 * Where a Sentinel-2 tile's pixel grids sit in its UTM zone, as the granule's `MTD_TL.xml` states
 * it (`Tile_Geocoding`: `HORIZONTAL_CS_NAME`, `HORIZONTAL_CS_CODE`, per resolution `Size` and
 * `Geoposition`). Derived from the tile id alone, deterministically, so the served metadata of any
 * product is plausible and a test can predict what the worker parses.
 *
 * The upper-left corner is the top-left corner of the tile's MGRS 100 km square, moved onto the
 * 60 m lattice (so the 10, 20 and 60 m grids share it):
 * - easting: the column letter's 100 km line. Column letters cycle A–H, J–R, S–Z for zones
 *   1, 2, 3 (mod 3), the first letter of a set at 100 km. `ULX = 60·⌊E/60⌋`.
 * - northing: the row letter's 100 km line, rows A–V (no I, O) repeating every 2 000 km, letter A
 *   at 0 m in odd zones and F at 0 m in even zones (MGRS "AA" scheme); of the northings that row
 *   letter names, the first at or above the latitude band's minimum northing (the table of
 *   proj4js/mgrs `getMinNorthing`, from GeoTrans; false northing 10 000 km in the south). The
 *   tile's top is that square's north edge N. `ULY = FN + 60·⌈(N − FN)/60⌉` with FN = 0 (north)
 *   or 10 000 000 (south): the lattice is counted from the equator.
 * The rounding is the one the two real tiles of fixtures/cdse show: T01KAB (`stactools_S2_L2A_MTD_TL.xml`)
 * ULX 99960 ULY 8200000, T46RER (`stactools_S2_L1C_MTD_TL.xml`) ULX 499980 ULY 3100020. Every tile
 * spans 109 800 m: 10980, 5490 and 1830 pixels at 10, 20 and 60 m.
 *
 * Sources: NGA "The Universal Grids" (DMA TM 8358.1) for UTM/MGRS; EPSG 326zz (WGS 84 / UTM zone
 * zzN) and 327zz (zzS); latitude bands C–M are south of the equator, N–X north.
 */
import type { GridResolution, TileGrid } from '@scenecache/core';

/** A tile's UTM CRS and grids, in metres (the values `MTD_TL.xml` serves for it). */
export interface TileGridParams {
  /** MGRS tile without the `T`, e.g. `01KAB`. */
  readonly tile: string;
  /** UTM zone, 1–60. */
  readonly zone: number;
  readonly hemisphere: 'N' | 'S';
  /** EPSG code: 326zz (north) or 327zz (south), e.g. 32701. */
  readonly epsg: number;
  /** `HORIZONTAL_CS_NAME`, e.g. `WGS84 / UTM zone 01S`. */
  readonly csName: string;
  /** Upper-left corner easting of every grid (`Geoposition/ULX`), metres. */
  readonly ulx: number;
  /** Upper-left corner northing of every grid (`Geoposition/ULY`), metres (false northing included in the south). */
  readonly uly: number;
  /**
   * The grid of each resolution as core's `parseTileMetadata` returns it for the served file:
   * shape `[rows, cols]`, transform `[res, 0, ULX, 0, -res, ULY]`, bbox `[minx, miny, maxx, maxy]`.
   */
  readonly grids: Readonly<Record<`${GridResolution}`, TileGrid>>;
}

/** Tile width and height, metres. */
export const TILE_SPAN_METRES = 109_800;

const BANDS = 'CDEFGHJKLMNPQRSTUVWX';
// Column letters without I and O in three sets of eight; the position in a set gives the column.
const COLUMNS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const ROWS = 'ABCDEFGHJKLMNPQRSTUV';
/** Minimum northing of each latitude band, metres (proj4js/mgrs `getMinNorthing`, from GeoTrans). */
const MIN_NORTHING: Readonly<Record<string, number>> = {
  C: 1_100_000, D: 2_000_000, E: 2_800_000, F: 3_700_000, G: 4_600_000, H: 5_500_000, J: 6_400_000,
  K: 7_300_000, L: 8_200_000, M: 9_100_000, N: 0, P: 800_000, Q: 1_700_000, R: 2_600_000,
  S: 3_500_000, T: 4_400_000, U: 5_300_000, V: 6_200_000, W: 7_000_000, X: 7_900_000,
};
const RESOLUTIONS: readonly GridResolution[] = [10, 20, 60];
const LATTICE = 60;
const SOUTH_FALSE_NORTHING = 10_000_000;

/**
 * The UTM CRS and grids of tile `tile` (e.g. `32TNS`, without the `T`); see the module comment
 * for the formula. E.g. `01KAB` → EPSG 32701, ULX 99960, ULY 8200000; `32TNS` → 32632, 499980, 5200020.
 * @throws RangeError when the zone, latitude band, column or row letter is not MGRS.
 */
export function tileGridOf(tile: string): TileGridParams {
  const zone = Number(tile.slice(0, 2));
  const band = tile[2] ?? '';
  const column = COLUMNS.indexOf(tile[3] ?? '');
  const row = ROWS.indexOf(tile[4] ?? '');
  if (!/^\d{2}$/.test(tile.slice(0, 2)) || !(zone >= 1 && zone <= 60) || !BANDS.includes(band) || band === '' || column < 0 || row < 0) {
    throw new RangeError(`not an MGRS tile: ${tile}`);
  }
  const hemisphere = band >= 'N' ? 'N' : 'S';
  // Whichever set the zone uses, the position in the set is the column (as tile-footprint.ts reads it).
  const easting = ((column % 8) + 1) * 100_000;
  let south = (((row - (zone % 2 === 0 ? 5 : 0)) % 20) + 20) % 20 * 100_000;
  while (south < MIN_NORTHING[band]!) south += 2_000_000;
  const top = south + 100_000;
  const falseNorthing = hemisphere === 'S' ? SOUTH_FALSE_NORTHING : 0;
  const ulx = LATTICE * Math.floor(easting / LATTICE);
  // `+ 0` turns a -0 (top exactly on the equator lattice) into 0.
  const uly = falseNorthing + LATTICE * Math.ceil((top - falseNorthing) / LATTICE) + 0;
  const zz = String(zone).padStart(2, '0');
  const grids = Object.fromEntries(
    RESOLUTIONS.map((res) => {
      const n = TILE_SPAN_METRES / res;
      const grid: TileGrid = { shape: [n, n], transform: [res, 0, ulx, 0, -res, uly], bbox: [ulx, uly - TILE_SPAN_METRES, ulx + TILE_SPAN_METRES, uly] };
      return [String(res), grid];
    }),
  ) as Record<`${GridResolution}`, TileGrid>;
  return Object.freeze({
    tile,
    zone,
    hemisphere,
    epsg: (hemisphere === 'N' ? 32600 : 32700) + zone,
    csName: `WGS84 / UTM zone ${zz}${hemisphere}`,
    ulx,
    uly,
    grids: Object.freeze(grids),
  });
}
