/**
 * The STAC API landing page (a STAC 1.1 Catalog with `conformsTo`) and `/conformance`.
 *
 * Spec: STAC API Core, "Landing Page"
 * (https://github.com/radiantearth/stac-api-spec/blob/release/v1.0.0/core/README.md#landing-page);
 * link relations from STAC API Core (`service-desc`, `conformance`, `data`, `search`) and OGC API
 * Features Part 1 (§7.2 landing page, §7.4 conformance).
 */
import { DOCS_PREFIX } from '../openapi.js';
import { STAC_COLLECTIONS } from './stac-collections.js';
import { GEOJSON, JSON_TYPE, STAC_VERSION, type StacLink } from './stac-links.js';

/**
 * The conformance classes the API implements: STAC API 1.0.0 Core, Collections, Features (OGC API
 * Features Part 1 core, GeoJSON, OpenAPI 3.0) and Item Search. No Item Search extension (fields,
 * sort, query, filter) is claimed: those parameters are refused.
 */
export const STAC_CONFORMANCE: readonly string[] = Object.freeze([
  'https://api.stacspec.org/v1.0.0/core',
  'https://api.stacspec.org/v1.0.0/collections',
  'https://api.stacspec.org/v1.0.0/ogcapi-features',
  'https://api.stacspec.org/v1.0.0/item-search',
  'http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core',
  'http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30',
  'http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson',
]);

/** The id of the root catalog. */
export const STAC_CATALOG_ID = 'scenecache';

/** The landing page document. */
export type StacLandingPage = {
  readonly type: 'Catalog';
  readonly stac_version: string;
  readonly stac_extensions: string[];
  readonly id: string;
  readonly title: string;
  readonly description: string;
  readonly conformsTo: string[];
  readonly links: StacLink[];
};

/**
 * The landing page for a view.
 * @param root - absolute URL of the landing page (`https://host/stac/v1`).
 * @param query - query string every link keeps (`?sign=true` or '').
 * @param view - `global` (admin key) or the tenant id, named in the description.
 */
export function landingPage(root: string, query: string, view: string): StacLandingPage {
  const origin = new URL(root).origin;
  return {
    type: 'Catalog',
    stac_version: STAC_VERSION,
    stac_extensions: [],
    id: STAC_CATALOG_ID,
    title: 'scenecache STAC API',
    description: `The Sentinel-2 products cached by this scenecache deployment, as ${view === 'global' ? 'the global cache holds them (admin view, s3:// hrefs into the global bucket)' : `tenant ${view} holds them in its bucket`}: one item per product, one asset per band file.`,
    conformsTo: [...STAC_CONFORMANCE],
    links: [
      { rel: 'self', href: `${root}${query}`, type: JSON_TYPE, title: 'This landing page' },
      { rel: 'root', href: `${root}${query}`, type: JSON_TYPE, title: 'scenecache STAC API' },
      { rel: 'conformance', href: `${root}/conformance${query}`, type: JSON_TYPE, title: 'Conformance classes' },
      { rel: 'data', href: `${root}/collections${query}`, type: JSON_TYPE, title: 'Collections' },
      { rel: 'search', href: `${root}/search${query}`, type: GEOJSON, method: 'GET', title: 'Item search (GET)' },
      { rel: 'search', href: `${root}/search${query}`, type: GEOJSON, method: 'POST', title: 'Item search (POST)' },
      { rel: 'service-desc', href: `${origin}${DOCS_PREFIX}/json`, type: 'application/vnd.oai.openapi+json;version=3.0', title: 'OpenAPI document' },
      { rel: 'service-doc', href: `${origin}${DOCS_PREFIX}`, type: 'text/html', title: 'API documentation (Swagger UI)' },
      ...STAC_COLLECTIONS.map((c): StacLink => ({ rel: 'child', href: `${root}/collections/${c.id}${query}`, type: JSON_TYPE, title: c.title })),
    ],
  };
}
