/**
 * Links of the STAC API's documents: every href is absolute (STAC requires it of `self`; clients
 * such as GDAL follow `next` as given), built from the request's own scheme and host, and keeps the
 * view's query (`?sign=true`) so a client that follows links stays in the view it asked for.
 *
 * Spec: STAC 1.1 Link Object (https://github.com/radiantearth/stac-spec/blob/v1.1.0/commons/links.md);
 * STAC API paging links (https://github.com/radiantearth/stac-api-spec/blob/release/v1.0.0/item-search/README.md#pagination).
 */
import type { FastifyRequest } from 'fastify';

/** The STAC version of every document (items, collections, the landing page). */
export const STAC_VERSION = '1.1.0';

/** Where the STAC API lives (the landing page). */
export const STAC_PREFIX = '/stac/v1';

/** Media types of the documents. */
export const GEOJSON = 'application/geo+json';
export const JSON_TYPE = 'application/json';

/** A STAC Link Object. `method`/`body` only on the `next` link of `POST /search`. */
export type StacLink = {
  readonly rel: string;
  readonly href: string;
  readonly type?: string;
  readonly title?: string;
  readonly method?: string;
  readonly body?: Readonly<Record<string, unknown>>;
  /** `false`: the body replaces the request's (STAC API paging). */
  readonly merge?: boolean;
};

/**
 * The absolute URL of the landing page as the client reached it: `<scheme>://<Host header>/stac/v1`.
 * Fastify's `request.host` is the `Host` header (with port); no proxy header is trusted.
 */
export function stacRoot(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}${STAC_PREFIX}`;
}

/** The query string every link of a view keeps: `?sign=true`, or '' for unsigned hrefs. */
export function viewQuery(sign: boolean): string {
  return sign ? '?sign=true' : '';
}

/** `url` with more query parameters (`undefined` values left out), after the view's own. */
export function withQuery(url: string, params: Readonly<Record<string, string | undefined>>): string {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) if (value !== undefined) parsed.searchParams.set(name, value);
  return parsed.href;
}
