/**
 * The STAC API's two collections, one per product level: `sentinel-2-l1c` (top-of-atmosphere
 * reflectance) and `sentinel-2-l2a` (bottom-of-atmosphere reflectance, Sen2Cor), and their
 * Collection documents with the extent of what the caller's view holds.
 *
 * Spec: STAC 1.1 Collection (https://github.com/radiantearth/stac-spec/blob/v1.1.0/collection-spec/collection-spec.md);
 * STAC API Collections / OGC API Features `/collections`
 * (https://github.com/radiantearth/stac-api-spec/tree/release/v1.0.0/ogcapi-features).
 */
import type { ProductLevel } from '@scenecache/core';
import type { StacLevelExtent } from '@scenecache/db';
import { STAC_VERSION, type StacLink } from './stac-links.js';

/** A collection the API serves. */
export interface StacCollectionInfo {
  readonly id: string;
  readonly level: ProductLevel;
  readonly title: string;
  readonly description: string;
}

/** The collections, in the order `/collections` lists them. */
export const STAC_COLLECTIONS: readonly StacCollectionInfo[] = Object.freeze([
  {
    id: 'sentinel-2-l1c',
    level: 'L1C',
    title: 'Sentinel-2 Level-1C (cached)',
    description:
      'Sentinel-2 MSI Level-1C products (top-of-atmosphere reflectance, 100 km MGRS tiles) held by this scenecache deployment: one item per cached product, one asset per cached band file (JPEG2000).',
  },
  {
    id: 'sentinel-2-l2a',
    level: 'L2A',
    title: 'Sentinel-2 Level-2A (cached)',
    description:
      'Sentinel-2 MSI Level-2A products (bottom-of-atmosphere reflectance, Sen2Cor; 100 km MGRS tiles) held by this scenecache deployment: one item per cached product, one asset per cached band file (JPEG2000) at 10, 20 or 60 m, plus SCL, AOT, WVP and TCI.',
  },
]);

/** The collection of an id, or undefined. */
export function collectionById(id: string): StacCollectionInfo | undefined {
  return STAC_COLLECTIONS.find((c) => c.id === id);
}

/** The collection of a product level. */
export function collectionOfLevel(level: ProductLevel): StacCollectionInfo {
  return STAC_COLLECTIONS.find((c) => c.level === level)!;
}

/** Copernicus Sentinel data terms (the data's licence; STAC 1.1 `license: other` + a `license` link). */
const LICENSE_URL = 'https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice';

/** A STAC 1.1 Collection document (the fields this API writes). */
export type StacCollectionDocument = {
  readonly type: 'Collection';
  readonly stac_version: string;
  readonly stac_extensions: string[];
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly keywords: string[];
  readonly license: string;
  readonly providers: Array<{ name: string; roles: string[]; url: string }>;
  readonly extent: {
    readonly spatial: { readonly bbox: number[][] };
    readonly temporal: { readonly interval: Array<[string | null, string | null]> };
  };
  readonly summaries: Record<string, unknown[]>;
  readonly links: StacLink[];
};

/**
 * The Collection document of `info` for one view.
 *
 * @param extent - what the view holds of this level (undefined: nothing yet; the extent is then
 *   the whole globe and an open time interval, as the spec allows).
 * @param root - absolute URL of the landing page (`https://host/stac/v1`).
 * @param query - query string every link keeps (`?sign=true` or '').
 */
export function collectionDocument(info: StacCollectionInfo, extent: StacLevelExtent | undefined, root: string, query: string): StacCollectionDocument {
  const self = `${root}/collections/${info.id}`;
  return {
    type: 'Collection',
    stac_version: STAC_VERSION,
    stac_extensions: [],
    id: info.id,
    title: info.title,
    description: info.description,
    keywords: ['Sentinel', 'Copernicus', 'ESA', 'Satellite', 'Global', 'Imagery', 'Reflectance', 'Sentinel-2', info.level],
    license: 'other',
    providers: [
      { name: 'ESA', roles: ['producer', 'licensor'], url: 'https://sentinel.esa.int/web/sentinel/missions/sentinel-2' },
      { name: 'Copernicus Data Space Ecosystem', roles: ['host'], url: 'https://dataspace.copernicus.eu' },
    ],
    extent: {
      spatial: { bbox: [extent?.bbox ? [...extent.bbox] : [-180, -90, 180, 90]] },
      temporal: { interval: [extent ? [extent.start.toISOString(), extent.end.toISOString()] : [null, null]] },
    },
    summaries: {
      platform: ['sentinel-2a', 'sentinel-2b', 'sentinel-2c'],
      constellation: ['sentinel-2'],
      instruments: ['msi'],
      gsd: [10, 20, 60],
    },
    links: [
      { rel: 'self', href: `${self}${query}`, type: 'application/json' },
      { rel: 'root', href: `${root}${query}`, type: 'application/json', title: 'scenecache STAC API' },
      { rel: 'parent', href: `${root}${query}`, type: 'application/json' },
      { rel: 'items', href: `${self}/items${query}`, type: 'application/geo+json', title: 'Items' },
      { rel: 'license', href: LICENSE_URL, type: 'application/pdf', title: 'Legal notice on the use of Copernicus Sentinel Data and Service Information' },
    ],
  };
}
