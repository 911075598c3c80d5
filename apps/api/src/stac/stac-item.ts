/**
 * A cached product as a STAC 1.1 Item: one asset per band file of the caller's view, with what EO
 * tools need to use it without opening it — file size and checksum, spectral bands, and the pixel
 * grid (CRS, shape, transform, bbox) that GDAL's STACIT driver, stackstac and odc-stac read.
 *
 * Fields (sources in brackets):
 * - `id` = scene id (product name without `.SAFE`); `collection` by level;
 * - `geometry` = the OData `GeoFootprint` (WGS84), `bbox` computed from it (west > east when the
 *   footprint crosses the antimeridian, as STAC 1.1 and RFC 7946 §5.2 want); both absent (`geometry:
 *   null`, no `bbox`) when the catalogue gave no footprint;
 * - properties: `datetime` = OData `ContentDate.Start`; `platform` (`sentinel-2a`…) from the name's
 *   mission, `constellation` `sentinel-2`, `instruments` `["msi"]`; `mgrs:utm_zone`,
 *   `mgrs:latitude_band`, `mgrs:grid_square` from the tile (MGRS extension v1.0.0);
 *   `s2:processing_baseline` (MTD_MSIL*.xml `PROCESSING_BASELINE`, else the name's `Nxxyy`);
 *   `eo:cloud_cover` (MTD_TL.xml `CLOUDY_PIXEL_PERCENTAGE`, else MTD_MSIL*.xml
 *   `Cloud_Coverage_Assessment`); `view:sun_azimuth`, `view:sun_elevation` (= 90° − mean sun
 *   zenith, MTD_TL.xml `Mean_Sun_Angle`); `proj:epsg`/`proj:code` of the tile; `created`/`updated`
 *   of the view's row;
 * - assets, key = band id (`B04`, `B04_20m`, `SCL`): `href` (`s3://bucket/key`, or a presigned
 *   HTTPS URL), `type` `image/jp2`, `roles` `["data"]`, `title`, STAC 1.1 `bands`, `gsd`,
 *   `data_type`, `nodata`; `file:size` and `file:checksum` (multihash of the SHA3-256: `1620` +
 *   64 lower-case hex digits, 0x16 = sha3-256, 0x20 = 32 bytes; File extension v2.1.0);
 *   `proj:epsg`, `proj:code`, `proj:shape`, `proj:transform`, `proj:bbox` of the band's
 *   resolution grid (MTD_TL.xml `Tile_Geocoding`).
 *
 * Extensions are declared only when the item uses them (each extension's schema requires its
 * fields to be present somewhere): file v2.1.0, eo v2.0.0, projection **v1.2.0** (GDAL 3.6 reads
 * `proj:epsg`, which v2.0 dropped for `proj:code`; v1.2.0 allows both), mgrs v1.0.0. The `view:`
 * fields are written without declaring the View extension: its schema is not among the vendored
 * ones the tests validate against (fixtures/stac), and undeclared fields still validate.
 *
 * Spec: STAC 1.1 Item (https://github.com/radiantearth/stac-spec/blob/v1.1.0/item-spec/item-spec.md),
 * https://github.com/stac-extensions/file/tree/v2.1.0, https://github.com/stac-extensions/eo/tree/v2.0.0,
 * https://github.com/stac-extensions/projection/tree/v1.2.0, https://github.com/stac-extensions/mgrs/tree/v1.0.0,
 * https://github.com/stac-extensions/view/tree/v1.0.0; multihash: https://github.com/multiformats/multicodec
 * (`sha3-256` = 0x16).
 */
import { parseProductName, type GranuleMetadata, type TileGrid } from '@scenecache/core';
import type { GeoJsonGeometry, StacProductRow } from '@scenecache/db';
import { bandAssetFacts, type StacBand } from './stac-bands.js';
import { collectionOfLevel } from './stac-collections.js';
import { GEOJSON, JSON_TYPE, STAC_VERSION, type StacLink } from './stac-links.js';

/** Extension schema URLs, as items declare them. */
export const STAC_EXTENSIONS = Object.freeze({
  file: 'https://stac-extensions.github.io/file/v2.1.0/schema.json',
  eo: 'https://stac-extensions.github.io/eo/v2.0.0/schema.json',
  projection: 'https://stac-extensions.github.io/projection/v1.2.0/schema.json',
  mgrs: 'https://stac-extensions.github.io/mgrs/v1.0.0/schema.json',
});

/** Media type of Sentinel-2 band files (JPEG 2000, RFC 3745). */
export const JP2 = 'image/jp2';

/** A GeoJSON Polygon or MultiPolygon (WGS84). */
export type ItemGeometry = { readonly type: 'Polygon' | 'MultiPolygon'; readonly coordinates: unknown };

/** A STAC asset of one band file. */
export type StacAsset = {
  readonly href: string;
  readonly type: string;
  readonly title?: string;
  readonly roles: string[];
  readonly bands?: StacBand[];
  readonly gsd?: number;
  readonly data_type?: string;
  readonly nodata?: number;
  readonly 'file:size'?: number;
  readonly 'file:checksum'?: string;
  readonly 'proj:epsg'?: number;
  readonly 'proj:code'?: string;
  readonly 'proj:shape'?: number[];
  readonly 'proj:transform'?: number[];
  readonly 'proj:bbox'?: number[];
};

/** A STAC 1.1 Item as this API writes it. */
export type StacItem = {
  readonly type: 'Feature';
  readonly stac_version: string;
  readonly stac_extensions: string[];
  readonly id: string;
  readonly collection: string;
  readonly geometry: ItemGeometry | null;
  readonly bbox?: [number, number, number, number];
  readonly properties: Readonly<Record<string, unknown>> & { readonly datetime: string };
  readonly links: StacLink[];
  readonly assets: Readonly<Record<string, StacAsset>>;
};

/** The href of an object of the view: `s3://bucket/key`, or a presigned URL. */
export type AssetHref = (bucket: string, key: string) => Promise<string> | string;

/** `s3://bucket/key`. */
export function s3Href(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

/**
 * The multihash of a SHA3-256 digest, as File extension v2.1.0 `file:checksum` wants it:
 * `16` (sha3-256) `20` (32 bytes) + the digest, lower-case hex. Undefined for anything but 64 hex digits.
 */
export function sha3Multihash(sha3Hex: string): string | undefined {
  return /^[0-9a-fA-F]{64}$/.test(sha3Hex) ? `1620${sha3Hex.toLowerCase()}` : undefined;
}

function isPosition(p: unknown): boolean {
  return Array.isArray(p) && p.length >= 2 && p.every((c) => typeof c === 'number' && Number.isFinite(c));
}

function isRing(r: unknown): boolean {
  return Array.isArray(r) && r.length >= 4 && r.every(isPosition);
}

function isPolygon(p: unknown): boolean {
  return Array.isArray(p) && p.length >= 1 && p.every(isRing);
}

/** The footprint when it is a GeoJSON Polygon or MultiPolygon the item schema accepts; else null. */
export function itemGeometry(footprint: GeoJsonGeometry | null): ItemGeometry | null {
  if (footprint === null) return null;
  if (footprint.type === 'Polygon' && isPolygon(footprint.coordinates)) return { type: 'Polygon', coordinates: footprint.coordinates };
  if (footprint.type === 'MultiPolygon' && Array.isArray(footprint.coordinates) && footprint.coordinates.length >= 1 && footprint.coordinates.every(isPolygon)) {
    return { type: 'MultiPolygon', coordinates: footprint.coordinates };
  }
  return null;
}

/**
 * `[west, south, east, north]` of a (Multi)Polygon, in degrees. A geometry whose longitudes span
 * more than 180° is taken to cross the antimeridian (footprints are ~110 km tiles, split at ±180°
 * as RFC 7946 §3.1.9 asks): its west edge is then the smallest eastern longitude and its east edge
 * the largest western one, so west > east (RFC 7946 §5.2, STAC 1.1 Item `bbox`).
 */
export function geometryBbox(geometry: ItemGeometry): [number, number, number, number] {
  const lons: number[] = [];
  let s = Infinity;
  let n = -Infinity;
  const walk = (c: unknown): void => {
    if (isPosition(c)) {
      const [x, y] = c as [number, number];
      lons.push(x);
      s = Math.min(s, y);
      n = Math.max(n, y);
      return;
    }
    if (Array.isArray(c)) for (const x of c) walk(x);
  };
  walk(geometry.coordinates);
  const w = Math.min(...lons);
  const e = Math.max(...lons);
  if (e - w <= 180) return [w, s, e, n];
  // Shift the western half by 360° and take the extent there: [179.2, 180.3] → west 179.2, east -179.7.
  const shifted = lons.map((x) => (x < 0 ? x + 360 : x));
  const west = Math.min(...shifted);
  const east = Math.max(...shifted);
  return [west > 180 ? west - 360 : west, s, east > 180 ? east - 360 : east, n];
}

/** `S2A` → `sentinel-2a`. */
function platformOf(mission: string): string {
  return `sentinel-${mission.slice(1).toLowerCase()}`;
}

/** A percentage the EO extension accepts (0–100), else undefined. */
function percent(v: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) && v >= 0 && v <= 100 ? v : undefined;
}

/** The item properties the metadata files give (cloud cover, sun angles, baseline). */
function metadataProperties(metadata: GranuleMetadata | null, nameBaseline: string): Record<string, unknown> {
  const tile = metadata?.tile;
  const product = metadata?.product;
  const out: Record<string, unknown> = {
    // `N0510` → `05.10` when the product metadata file was not read.
    's2:processing_baseline': product?.processingBaseline ?? `${nameBaseline.slice(1, 3)}.${nameBaseline.slice(3, 5)}`,
  };
  const cloud = percent(tile?.cloudyPixelPercentage) ?? percent(product?.cloudCoverage);
  if (cloud !== undefined) out['eo:cloud_cover'] = cloud;
  if (tile?.sunAzimuth !== undefined && Number.isFinite(tile.sunAzimuth)) out['view:sun_azimuth'] = tile.sunAzimuth;
  if (tile?.sunZenith !== undefined && Number.isFinite(tile.sunZenith)) out['view:sun_elevation'] = Number((90 - tile.sunZenith).toFixed(10));
  return out;
}

/** The projection fields of a band's grid. */
function gridFields(epsg: number, grid: TileGrid): Pick<StacAsset, 'proj:epsg' | 'proj:code' | 'proj:shape' | 'proj:transform' | 'proj:bbox'> {
  return { 'proj:epsg': epsg, 'proj:code': `EPSG:${epsg}`, 'proj:shape': [...grid.shape], 'proj:transform': [...grid.transform], 'proj:bbox': [...grid.bbox] };
}

/** What {@link buildStacItem} needs besides the product. */
export interface ItemContext {
  /** Absolute landing page URL (`https://host/stac/v1`). */
  readonly root: string;
  /** Query string every link keeps (`?sign=true` or ''). */
  readonly query: string;
  /** The href of each band object. */
  readonly href: AssetHref;
}

/**
 * The STAC Item of a product as one view sees it (see the module comment for every field).
 * @throws what `context.href` throws (a presigning failure).
 */
export async function buildStacItem(product: StacProductRow, context: ItemContext): Promise<StacItem> {
  const name = parseProductName(product.sceneId);
  const collection = collectionOfLevel(product.level).id;
  const tile = product.granuleMetadata?.tile;
  const extensions = new Set<string>([STAC_EXTENSIONS.mgrs]);

  const assets: Record<string, StacAsset> = {};
  for (const [bandId, object] of Object.entries(product.bands)) {
    const facts = bandAssetFacts(product.level, bandId);
    const grid = facts && tile ? tile.grids[`${facts.resolution}`] : undefined;
    const checksum = object.sha3_256 === undefined ? undefined : sha3Multihash(object.sha3_256);
    const asset: StacAsset = {
      href: await context.href(product.bucket, object.key),
      type: JP2,
      ...(facts ? { title: facts.title } : {}),
      roles: ['data'],
      ...(facts ? { bands: facts.bands, gsd: facts.resolution, data_type: facts.dataType, nodata: facts.nodata } : {}),
      ...(object.size === undefined ? {} : { 'file:size': object.size }),
      ...(checksum === undefined ? {} : { 'file:checksum': checksum }),
      ...(grid && tile ? gridFields(tile.epsg, grid) : {}),
    };
    if (asset['file:size'] !== undefined || asset['file:checksum'] !== undefined) extensions.add(STAC_EXTENSIONS.file);
    if (asset['proj:epsg'] !== undefined) extensions.add(STAC_EXTENSIONS.projection);
    if (asset.bands?.some((b) => b['eo:center_wavelength'] !== undefined)) extensions.add(STAC_EXTENSIONS.eo);
    assets[bandId] = asset;
  }

  const tileId = name.tile;
  const properties: Record<string, unknown> & { datetime: string } = {
    datetime: product.sensedAt.toISOString(),
    created: product.createdAt.toISOString(),
    updated: product.updatedAt.toISOString(),
    platform: platformOf(name.mission),
    constellation: 'sentinel-2',
    instruments: ['msi'],
    'mgrs:utm_zone': Number(tileId.slice(0, 2)),
    'mgrs:latitude_band': tileId.slice(2, 3),
    'mgrs:grid_square': tileId.slice(3, 5),
    ...metadataProperties(product.granuleMetadata, name.baseline),
  };
  if (properties['eo:cloud_cover'] !== undefined) extensions.add(STAC_EXTENSIONS.eo);
  if (tile) {
    properties['proj:epsg'] = tile.epsg;
    properties['proj:code'] = `EPSG:${tile.epsg}`;
    extensions.add(STAC_EXTENSIONS.projection);
  }

  const geometry = itemGeometry(product.footprint);
  const self = `${context.root}/collections/${collection}/items/${encodeURIComponent(product.sceneId)}`;
  const collectionUrl = `${context.root}/collections/${collection}${context.query}`;
  return {
    type: 'Feature',
    stac_version: STAC_VERSION,
    stac_extensions: [...extensions].sort(),
    id: product.sceneId,
    collection,
    geometry,
    ...(geometry ? { bbox: geometryBbox(geometry) } : {}),
    properties,
    links: [
      { rel: 'self', href: `${self}${context.query}`, type: GEOJSON },
      { rel: 'parent', href: collectionUrl, type: JSON_TYPE },
      { rel: 'collection', href: collectionUrl, type: JSON_TYPE },
      { rel: 'root', href: `${context.root}${context.query}`, type: JSON_TYPE },
    ],
    assets,
  };
}
