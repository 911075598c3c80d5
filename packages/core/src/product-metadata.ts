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
  readonly tile: TileMetadata;
  readonly product: ProductLevelMetadata;
  /** SAFE-relative paths of the files read: `{tile: 'GRANULE/…/MTD_TL.xml', product: 'MTD_MSIL2A.xml'}`. */
  readonly sources: { readonly tile: string; readonly product: string };
}
