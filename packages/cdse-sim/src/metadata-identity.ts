/**
 * The identity a product's metadata files (`MTD_TL.xml`, `MTD_MSIL1C.xml` / `MTD_MSIL2A.xml`)
 * state: the values metadata-template.ts substitutes when it renders a fixture file for another
 * product. The fixture's own product has one (read from the fixture), every served product another
 * (derived from its name, consistently with the manifest the sim serves for it: same granule folder
 * time, absolute orbit and processing centre as safe-template.ts gives).
 *
 * Values a name does not give are derived deterministically: the absolute orbit from the sensing
 * time (safe-template.ts), the processing centre from the platform (`2BPS` for S2B, as the
 * manifest's datastrip folder), the UTM grid from the tile (tile-grid.ts), and the cloud cover
 * from a hash of the name — except for the fixture's own product, which keeps its real cloud cover
 * so its files are served byte-identical to the fixture.
 */
import { createHash } from 'node:crypto';
import type { SentinelProduct } from '@scenecache/core';
import { absoluteOrbitOf, granuleTimeOf, msToCompact, type SafeTemplate } from './safe-template.js';
import { tileGridOf, type TileGridParams } from './tile-grid.js';

/** What a product's metadata files say about the product. Times are compact UTC `YYYYMMDDTHHMMSS`. */
export interface MetadataIdentity {
  /** `<sceneId>.SAFE` (`PRODUCT_URI`). */
  readonly safeName: string;
  /** `S2A` … `S2D`. */
  readonly mission: string;
  /** MGRS tile without the `T`, e.g. `01KAB`. */
  readonly tile: string;
  /** Datatake sensing start (band file names, `DATATAKE_SENSING_START`). */
  readonly sensing: string;
  /** Granule start (granule folder name, datastrip `S<time>`). */
  readonly granuleTime: string;
  /** Generation time: the product name's discriminator (`GENERATION_TIME`, tile and datastrip ids). */
  readonly processing: string;
  /** Absolute orbit (`A042640` in granule names). */
  readonly absoluteOrbit: number;
  /** Processing centre in tile and datastrip ids (`2APS`, `VGS4`). */
  readonly centre: string;
  /** `PROCESSING_BASELINE`, e.g. `05.09` (the name's `N0509`). */
  readonly baseline: string;
  /** Relative orbit, 1–143 (`SENSING_ORBIT_NUMBER`). */
  readonly relativeOrbit: number;
  /**
   * Cloud cover, percent 0–100 with at most 6 decimals: `Cloud_Coverage_Assessment` of the product
   * file, `CLOUDY_PIXEL_PERCENTAGE` of the tile file, and the catalogue's `cloudCover` attribute.
   */
  readonly cloudCover: number;
  /** The tile's UTM CRS and grids (`Tile_Geocoding`). */
  readonly grid: TileGridParams;
}

/** `N0509` → `05.09`. */
export function baselineVersion(baseline: string): string {
  return `${baseline.slice(1, 3)}.${baseline.slice(3)}`;
}

/** The compact datatake sensing time of a product (`YYYYMMDDTHHMMSS`). */
export function sensingCompact(product: SentinelProduct): string {
  return msToCompact(product.sensingTime.getTime());
}

/**
 * The cloud cover the sim states for `product` (percent, 6 decimals): the fixture's real value for
 * the fixture's own product (`source`), otherwise a stable pseudo-random percentage from
 * `sha256(<SAFE name>)` (bytes 8–11, the value the catalogue has always given).
 */
export function cloudCoverOf(product: SentinelProduct, source: MetadataIdentity): number {
  if (product.safeName === source.safeName) return source.cloudCover;
  const seed = createHash('sha256').update(product.safeName).digest();
  return Math.round((seed.readUInt32BE(8) / 0xffffffff) * 100 * 1e6) / 1e6;
}

/**
 * The identity the sim's metadata files state for `product`: from its name, with the granule time,
 * absolute orbit and centre of the manifest the sim serves for it (`manifestTemplate`, its level's
 * fixture manifest), and the cloud cover of {@link cloudCoverOf} (`source`: the metadata fixture's
 * own identity).
 * @throws RangeError when the product's tile is not MGRS (see tileGridOf).
 */
export function metadataIdentityOf(product: SentinelProduct, manifestTemplate: SafeTemplate, source: MetadataIdentity): MetadataIdentity {
  return Object.freeze({
    safeName: product.safeName,
    mission: product.mission,
    tile: product.tile,
    sensing: sensingCompact(product),
    granuleTime: granuleTimeOf(product, manifestTemplate),
    processing: product.discriminator,
    absoluteOrbit: absoluteOrbitOf(product),
    centre: `${product.mission.slice(1)}PS`,
    baseline: baselineVersion(product.baseline),
    relativeOrbit: product.relativeOrbit,
    cloudCover: cloudCoverOf(product, source),
    grid: tileGridOf(product.tile),
  });
}
