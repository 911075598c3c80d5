/**
 * What a product's metadata files say that STAC items need (issue 19), read once per product when
 * it is first registered (like `manifest.safe`) and stored in `upstream_products.granule_metadata`.
 *
 * Sources (real files in fixtures/cdse, `stactools_S2_*_MTD_TL.xml`, `stactools_S2_*_MTD_MSIL*.xml`):
 * - the granule's `MTD_TL.xml`, `n1:Geometric_Info/Tile_Geocoding`: `HORIZONTAL_CS_CODE`
 *   (`EPSG:32701`), per resolution `Size` (`NROWS`, `NCOLS`) and `Geoposition` (`ULX`, `ULY`,
 *   `XDIM`, `YDIM`; YDIM is already negative), and `Tile_Angles/Mean_Sun_Angle` (`ZENITH_ANGLE`,
 *   `AZIMUTH_ANGLE`, degrees); `Image_Content_QI/CLOUDY_PIXEL_PERCENTAGE`;
 * - the product's `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`: `PROCESSING_BASELINE` (`05.09`) and
 *   `Quality_Indicators_Info/Cloud_Coverage_Assessment`.
 * Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD), sections "Tile Metadata" and
 * "Product Metadata".
 */
import { XMLParser } from 'fast-xml-parser';
import type { SafeFile } from './safe-manifest.js';

/** Resolutions (metres) of a Sentinel-2 tile's grids. */
export type GridResolution = 10 | 20 | 60;

/** One pixel grid of a tile, in the tile's UTM CRS (STAC projection extension fields). */
export interface TileGrid {
  /** `[rows, columns]` in pixels (`proj:shape`). */
  readonly shape: readonly [number, number];
  /**
   * The affine transform `[XDIM, 0, ULX, 0, YDIM, ULY]` (`proj:transform`, GDAL order a, b, c,
   * d, e, f; metres). YDIM is negative.
   */
  readonly transform: readonly [number, number, number, number, number, number];
  /** `[minx, miny, maxx, maxy]` in the CRS, metres (`proj:bbox`). */
  readonly bbox: readonly [number, number, number, number];
}

/** What `MTD_TL.xml` gives. */
export interface TileMetadata {
  /** EPSG code of the tile's CRS, e.g. 32701 (from `HORIZONTAL_CS_CODE` `EPSG:32701`). */
  readonly epsg: number;
  /** The grid of each resolution the file describes (10, 20 and 60 m in real tiles), keyed `"10"`…. */
  readonly grids: Readonly<Partial<Record<`${GridResolution}`, TileGrid>>>;
  /** Mean sun zenith angle over the tile, degrees; undefined when the file lacks it. */
  readonly sunZenith?: number | undefined;
  /** Mean sun azimuth angle over the tile, degrees. */
  readonly sunAzimuth?: number | undefined;
  /** `CLOUDY_PIXEL_PERCENTAGE` of the tile, 0–100. */
  readonly cloudyPixelPercentage?: number | undefined;
}

/** What `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml` gives. */
export interface ProductLevelMetadata {
  /** `PROCESSING_BASELINE`, e.g. `05.09`. */
  readonly processingBaseline?: string | undefined;
  /** `Cloud_Coverage_Assessment` of the product, 0–100. */
  readonly cloudCoverage?: number | undefined;
}

/**
 * Stored per product in `upstream_products.granule_metadata`: the parsed metadata files plus the
 * manifest paths they were read from (for tracing).
 */
export interface GranuleMetadata {
  /** What `MTD_TL.xml` says; undefined when it could not be read (see `error`). */
  readonly tile?: TileMetadata | undefined;
  /** What `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml` says; undefined when it could not be read. */
  readonly product?: ProductLevelMetadata | undefined;
  /** SAFE-relative paths of the files read: `{tile: 'GRANULE/…/MTD_TL.xml', product: 'MTD_MSIL2A.xml'}` (absent when the manifest lists none). */
  readonly sources?: { readonly tile: string; readonly product: string } | undefined;
  /**
   * Why the files gave nothing (the manifest lists no metadata file, or a file is not what the
   * specification describes). Stored so the product is not prepared again for it: its items then
   * lack the projection fields, and its bands are served as usual.
   */
  readonly error?: string | undefined;
}

/** Thrown when a metadata file lacks what the items need (its grid or CRS). Not retryable: the file is what CDSE serves. */
export class MetadataParseError extends Error {
  override readonly name = 'MetadataParseError';
}

const parser = new XMLParser({ ignoreAttributes: false, removeNSPrefix: true, parseTagValue: false, attributeNamePrefix: '@' });

type XmlNode = Record<string, unknown>;

/** The child `name` of `node` as an object (the first when repeated), or undefined. */
function child(node: unknown, name: string): XmlNode | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const v = (node as XmlNode)[name];
  const first: unknown = Array.isArray(v) ? v[0] : v;
  return first !== null && typeof first === 'object' ? (first as XmlNode) : undefined;
}

/** Every child `name` of `node` as objects. */
function children(node: unknown, name: string): XmlNode[] {
  if (node === null || typeof node !== 'object') return [];
  const v = (node as XmlNode)[name];
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is XmlNode => x !== null && typeof x === 'object');
}

/** The text of child `name` (an element with attributes parses as `{'#text': …}`), trimmed. */
function text(node: unknown, name: string): string | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const v = (node as XmlNode)[name];
  const first: unknown = Array.isArray(v) ? v[0] : v;
  const s = typeof first === 'string' ? first : first !== null && typeof first === 'object' ? (first as XmlNode)['#text'] : undefined;
  return typeof s === 'string' ? s.trim() : typeof s === 'number' ? String(s) : undefined;
}

function finite(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** The document's root element (its one non-declaration key). */
function rootOf(xml: string, what: string): XmlNode {
  let doc: unknown;
  try {
    doc = parser.parse(xml);
  } catch (err) {
    throw new MetadataParseError(`${what} is not well-formed XML: ${String(err)}`, { cause: err });
  }
  const key = Object.keys(doc as XmlNode).find((k) => !k.startsWith('?'));
  const root = key === undefined ? undefined : child(doc, key);
  if (!root) throw new MetadataParseError(`${what} has no root element`);
  return root;
}

/**
 * Parse a granule's `MTD_TL.xml` (L1C or L2A tile metadata).
 *
 * Reads `Geometric_Info/Tile_Geocoding`: `HORIZONTAL_CS_CODE` (`EPSG:<code>`), each `Size`
 * (`resolution` attribute, `NROWS`, `NCOLS`) and `Geoposition` (`ULX`, `ULY`, `XDIM`, `YDIM`);
 * `Geometric_Info/Tile_Angles/Mean_Sun_Angle` (`ZENITH_ANGLE`, `AZIMUTH_ANGLE`, degrees); and
 * `Quality_Indicators_Info/Image_Content_QI/CLOUDY_PIXEL_PERCENTAGE`. The grid's transform is
 * `[XDIM, 0, ULX, 0, YDIM, ULY]` and its bbox `[ULX, ULY + NROWS·YDIM, ULX + NCOLS·XDIM, ULY]`.
 * For the real T01KAB file (fixtures/cdse/stactools_S2_L2A_MTD_TL.xml), 10 m: shape
 * [10980, 10980], transform [10, 0, 99960, 0, -10, 8200000], EPSG 32701.
 * Source: Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD), "Tile Metadata".
 * @throws MetadataParseError when the XML is malformed or lacks the CRS code or every grid.
 */
export function parseTileMetadata(xml: string): TileMetadata {
  const root = rootOf(xml, 'MTD_TL.xml');
  const geometric = child(root, 'Geometric_Info');
  const geocoding = child(geometric, 'Tile_Geocoding');
  const code = /^EPSG:(\d+)$/.exec(text(geocoding, 'HORIZONTAL_CS_CODE') ?? '');
  if (!code) throw new MetadataParseError(`MTD_TL.xml: Tile_Geocoding/HORIZONTAL_CS_CODE is missing or not EPSG:<code> (${text(geocoding, 'HORIZONTAL_CS_CODE') ?? 'absent'})`);
  const sizes = new Map(children(geocoding, 'Size').map((s) => [String(s['@resolution']), s]));
  const grids: Partial<Record<`${GridResolution}`, TileGrid>> = {};
  for (const position of children(geocoding, 'Geoposition')) {
    const resolution = String(position['@resolution']);
    if (resolution !== '10' && resolution !== '20' && resolution !== '60') continue;
    const size = sizes.get(resolution);
    const [rows, cols, ulx, uly, xdim, ydim] = [text(size, 'NROWS'), text(size, 'NCOLS'), text(position, 'ULX'), text(position, 'ULY'), text(position, 'XDIM'), text(position, 'YDIM')].map(finite);
    if (rows === undefined || cols === undefined || ulx === undefined || uly === undefined || xdim === undefined || ydim === undefined) continue;
    const ys = [uly, uly + rows * ydim];
    grids[resolution] = {
      shape: [rows, cols],
      transform: [xdim, 0, ulx, 0, ydim, uly],
      bbox: [Math.min(ulx, ulx + cols * xdim), Math.min(...ys), Math.max(ulx, ulx + cols * xdim), Math.max(...ys)],
    };
  }
  if (Object.keys(grids).length === 0) throw new MetadataParseError('MTD_TL.xml: Tile_Geocoding has no complete Size/Geoposition pair for 10, 20 or 60 m');
  const sun = child(child(geometric, 'Tile_Angles'), 'Mean_Sun_Angle');
  const qi = child(child(root, 'Quality_Indicators_Info'), 'Image_Content_QI');
  return {
    epsg: Number(code[1]),
    grids,
    sunZenith: finite(text(sun, 'ZENITH_ANGLE')),
    sunAzimuth: finite(text(sun, 'AZIMUTH_ANGLE')),
    cloudyPixelPercentage: finite(text(qi, 'CLOUDY_PIXEL_PERCENTAGE')),
  };
}

/**
 * Parse a product's `MTD_MSIL1C.xml` or `MTD_MSIL2A.xml`: `General_Info/Product_Info/PROCESSING_BASELINE`
 * and `Quality_Indicators_Info/Cloud_Coverage_Assessment` (percent). Fields the file lacks are undefined.
 * Source: Sentinel-2 Products Specification Document (S2-PDGS-TAS-DI-PSD), "Product Metadata".
 * @throws MetadataParseError when the XML is malformed.
 */
export function parseProductLevelMetadata(xml: string): ProductLevelMetadata {
  const root = rootOf(xml, 'MTD_MSI*.xml');
  const info = child(child(root, 'General_Info'), 'Product_Info');
  return {
    processingBaseline: text(info, 'PROCESSING_BASELINE'),
    cloudCoverage: finite(text(child(root, 'Quality_Indicators_Info'), 'Cloud_Coverage_Assessment')),
  };
}

/** The manifest paths of a product's tile metadata (`GRANULE/<granule>/MTD_TL.xml`) and product metadata (`MTD_MSIL1C.xml`/`MTD_MSIL2A.xml`); undefined when the manifest lacks one. */
export function metadataFilesOf(files: readonly SafeFile[]): { tile: SafeFile; product: SafeFile } | undefined {
  const tile = files.find((f) => /^GRANULE\/[^/]+\/MTD_TL\.xml$/.test(f.path));
  const product = files.find((f) => /^MTD_MSIL(?:1C|2A)\.xml$/.test(f.path));
  return tile && product ? { tile, product } : undefined;
}
