/**
 * An approximate footprint of an MGRS tile, so the catalogue's `Footprint`/`GeoFootprint` and the
 * manifest's `gml:coordinates` sit roughly where the tile is. Not survey-grade: the latitude comes
 * from the 8° latitude band's centre (the 100 km row letter is ignored) and the longitude from the
 * 100 km column letter. Nothing in scenecache reads footprints; they only have to look real.
 *
 * Source: MGRS / UTM definitions (NGA "The Universal Grids", DMA TM 8358.1): zones are 6° wide
 * from 180°W, latitude bands C..X (no I, O) are 8° tall from 80°S, and column letters cycle through
 * A–H, J–R, S–Z for zones 1, 2, 3 (mod 3), starting at 100 km easting.
 */

/** A closed ring of `[lon, lat]` pairs (degrees, WGS84), first point repeated last. */
export type Ring = ReadonlyArray<readonly [number, number]>;

const BANDS = 'CDEFGHJKLMNPQRSTUVWX';
// Column letters A–Z without I and O, in three sets of eight (A–H, J–R, S–Z): the position in
// the set gives the 100 km column, whichever set the zone uses.
const COLUMNS = 'ABCDEFGHJKLMNPQRSTUVWXYZ';

/**
 * The approximate footprint of tile `tile` (e.g. `32TNS`), about 110 km square.
 * @throws RangeError when the tile's zone, band or column letter is invalid.
 */
export function tileFootprint(tile: string): Ring {
  const zone = Number(tile.slice(0, 2));
  const band = BANDS.indexOf(tile[2] ?? '');
  const letter = COLUMNS.indexOf(tile[3] ?? '');
  if (!(zone >= 1 && zone <= 60) || band < 0 || letter < 0) throw new RangeError(`not an MGRS tile: ${tile}`);
  const column = letter % 8;
  const lat = Math.min(84, -80 + band * 8 + 4);
  const kmPerDegLon = 111.32 * Math.cos((lat * Math.PI) / 180);
  // Tiles span 109.8 km starting at the column's 100 km easting; the zone's central meridian is at 500 km.
  const westKm = (column + 1) * 100 - 500;
  const centralMeridian = -180 + (zone - 1) * 6 + 3;
  // Tiles at a zone's edge may reach over the antimeridian (e.g. 01KAB): clamp rather than wrap,
  // so the polygon stays simple.
  const clampLon = (x: number): number => Math.min(180, Math.max(-180, x));
  const west = clampLon(centralMeridian + westKm / kmPerDegLon);
  const east = clampLon(centralMeridian + (westKm + 109.8) / kmPerDegLon);
  const south = lat - 0.49;
  const north = lat + 0.49;
  const r = (x: number): number => Math.round(x * 1e6) / 1e6;
  return [
    [r(west), r(south)],
    [r(east), r(south)],
    [r(east), r(north)],
    [r(west), r(north)],
    [r(west), r(south)],
  ];
}

/** OData `Footprint`: `geography'SRID=4326;POLYGON ((lon lat, ...))'` (as in the catalogue fixtures). */
export function odataFootprint(ring: Ring): string {
  return `geography'SRID=4326;POLYGON ((${ring.map(([lon, lat]) => `${lon} ${lat}`).join(', ')}))'`;
}

/** OData `GeoFootprint`: a GeoJSON Polygon. */
export function geoJsonFootprint(ring: Ring): { type: 'Polygon'; coordinates: number[][][] } {
  return { type: 'Polygon', coordinates: [ring.map(([lon, lat]) => [lon, lat])] };
}

/** The manifest's `gml:coordinates`: `lat lon lat lon ... ` (latitude first, trailing space). */
export function gmlCoordinates(ring: Ring): string {
  return ring.map(([lon, lat]) => `${lat} ${lon} `).join('');
}
