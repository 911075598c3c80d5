/**
 * The STAC API at `/stac/v1` (STAC API 1.0.0: Core, Collections, Features, Item Search; STAC 1.1
 * documents) over the cached products, registered by app.ts in a scope of its own behind the same
 * Bearer-auth hook and rate limit as `/v1`:
 *
 * - `GET /stac/v1` landing page, `GET /stac/v1/conformance`;
 * - `GET /stac/v1/collections`, `GET /stac/v1/collections/{collectionId}` (`sentinel-2-l1c`,
 *   `sentinel-2-l2a`, with the extent of the caller's view);
 * - `GET /stac/v1/collections/{collectionId}/items` (`bbox`, `datetime`, `limit`, `token`),
 *   `GET /stac/v1/collections/{collectionId}/items/{itemId}`;
 * - `GET`/`POST /stac/v1/search` (`bbox`, `datetime`, `ids`, `collections`, `limit`, `token`).
 *
 * Views: an admin key (or `AUTH_MODE=open`) sees the global cache, asset hrefs
 * `s3://<GLOBAL_BUCKET>/<key>`; a tenant key sees only the products and bands of its
 * `tenant_scenes`, hrefs `s3://<tenant bucket>/<key>`. With `?sign=true` hrefs are presigned
 * HTTPS GET URLs valid `STAC_SIGNED_URL_TTL_SECONDS`, and every link keeps `sign=true`.
 *
 * Replies: items and item collections `application/geo+json`, the rest `application/json`; errors
 * `{error: {code, message, field?}}`: 400 `invalid_payload` (bad bbox, datetime, limit, token,
 * unknown collection in a search, unknown parameter), 401, 404 `not_found` (unknown collection or
 * item, or an item outside the caller's view), 503 (Postgres; or no object store to sign with).
 *
 * Spec: https://github.com/radiantearth/stac-api-spec/tree/release/v1.0.0 (core, collections,
 * ogcapi-features, item-search); OGC API Features Part 1 (OGC 17-069r4).
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Kysely } from 'kysely';
import { ScenecacheError, type ProductLevel } from '@scenecache/core';
import { findStacProduct, searchStacProducts, stacLevelExtents, type DB, type StacView } from '@scenecache/db';
import type { ObjectStore } from '@scenecache/storage';
import { principalOf } from '../auth.js';
import { callDependency, serviceUnavailable } from '../dependency-call.js';
import type { DependencyTimeouts } from '../download-enqueue.js';
import { errorReplySchema } from '../error-handler.js';
import { collectionById, collectionDocument, STAC_COLLECTIONS, type StacCollectionInfo } from './stac-collections.js';
import { buildStacItem, s3Href, type AssetHref, type StacItem } from './stac-item.js';
import { landingPage, STAC_CONFORMANCE } from './stac-landing.js';
import { GEOJSON, JSON_TYPE, stacRoot, viewQuery, withQuery, type StacLink } from './stac-links.js';
import { encodeSearchToken, parseStacSearch, type StacSearchInput } from './stac-search.js';
import {
  stacCollectionParamsSchema,
  stacCollectionSchema,
  stacCollectionsSchema,
  stacConformanceSchema,
  stacItemCollectionSchema,
  stacItemParamsSchema,
  stacItemSchema,
  stacItemsQuerySchema,
  stacLandingSchema,
  stacSearchBodySchema,
  stacSearchPostQuerySchema,
  stacSearchQuerySchema,
  stacViewQuerySchema,
} from './stac.schemas.js';

/** Options of {@link stacRoutes}. */
export interface StacRoutesOptions {
  readonly db: Kysely<DB>;
  readonly timeouts: DependencyTimeouts;
  /** Signs `?sign=true` hrefs; without it such requests answer 503. */
  readonly store: ObjectStore | undefined;
  /** `STAC_SIGNED_URL_TTL_SECONDS`. */
  readonly signedUrlTtlSeconds: number;
}

/** A page of items (STAC API ItemCollection, a GeoJSON FeatureCollection). */
type ItemCollection = {
  readonly type: 'FeatureCollection';
  readonly features: StacItem[];
  readonly links: StacLink[];
  readonly numberReturned: number;
};

const errors = { 400: errorReplySchema, 401: errorReplySchema, 503: errorReplySchema };
const errorsWith404 = { ...errors, 404: errorReplySchema };

/** A reply of `schema` sent as GeoJSON (`application/geo+json`). */
function geoJson<T>(schema: T): { content: { 'application/geo+json': { schema: T } } } {
  return { content: { 'application/geo+json': { schema } } };
}

/** The caller's view: a tenant key sees its tenant's bucket, anything else the global cache. */
function viewOf(request: FastifyRequest): StacView {
  const principal = principalOf(request);
  return principal.kind === 'tenant' ? { kind: 'tenant', tenantId: principal.tenantId } : { kind: 'global' };
}

function notFound(message: string): ScenecacheError {
  return new ScenecacheError('not_found', message, { httpStatus: 404 });
}

/** The collection of a path, or 404. */
function collectionOf(collectionId: string): StacCollectionInfo {
  const info = collectionById(collectionId);
  if (!info) throw notFound(`no collection ${JSON.stringify(collectionId)} (this API has ${STAC_COLLECTIONS.map((c) => c.id).join(', ')})`);
  return info;
}

/** `/stac/v1` routes (registered under that prefix). */
export const stacRoutes: FastifyPluginCallback<StacRoutesOptions> = (fastify, options, done) => {
  const app = fastify.withTypeProvider<ZodTypeProvider>();
  const { db, timeouts, store, signedUrlTtlSeconds } = options;
  const postgres = <T>(call: () => Promise<T>) => callDependency('Postgres', timeouts.postgresMs, call);

  /** The href maker of a request: `s3://` hrefs, or presigned URLs with `sign=true`. */
  const hrefs = (sign: boolean): AssetHref => {
    if (!sign) return s3Href;
    if (!store) throw serviceUnavailable('this API has no object store configured: it cannot presign asset URLs (sign=true)');
    return (bucket, key) => store.presignGetObject(bucket, key, signedUrlTtlSeconds);
  };

  /** Run a search and build its page: the items and `self`/`root`/`next` links (+ `more` links). */
  const itemPage = async (
    request: FastifyRequest,
    input: StacSearchInput,
    sign: boolean,
    next: (token: string) => StacLink,
    levels?: ProductLevel[],
    more: StacLink[] = [],
  ): Promise<ItemCollection> => {
    const view = viewOf(request);
    const search = parseStacSearch(input, view, levels);
    const href = hrefs(sign);
    const page = await postgres(() => searchStacProducts(db, search.filter, { after: search.after, limit: search.pageSize }));
    const root = stacRoot(request);
    const query = viewQuery(sign);
    const features = await Promise.all(page.rows.map((row) => buildStacItem(row, { root, query, href })));
    const last = page.rows[page.rows.length - 1];
    const links: StacLink[] = [
      { rel: 'self', href: new URL(request.url, root).href, type: GEOJSON },
      { rel: 'root', href: `${root}${query}`, type: JSON_TYPE },
      ...more,
      ...(page.more && last ? [next(encodeSearchToken(last.position))] : []),
    ];
    return { type: 'FeatureCollection', features, links, numberReturned: features.length };
  };

  const send = <T>(reply: FastifyReply, type: string, body: T): T => {
    void reply.type(type);
    return body;
  };

  app.get(
    '/',
    {
      prefixTrailingSlash: 'no-slash',
      schema: {
        operationId: 'getStacLandingPage', summary: 'STAC API landing page (a STAC Catalog with conformsTo)',
        description: 'Links to the conformance classes, the collections, item search (GET and POST) and the OpenAPI document. An admin key sees the global cache, a tenant key its own bucket.',
        tags: ['STAC'],
        querystring: stacViewQuerySchema,
        response: { 200: stacLandingSchema, ...errors },
      },
    },
    async (request, reply) => {
      const view = viewOf(request);
      return send(reply, JSON_TYPE, landingPage(stacRoot(request), viewQuery(request.query.sign === 'true'), view.kind === 'tenant' ? view.tenantId : 'global'));
    },
  );

  app.get(
    '/conformance',
    {
      schema: {
        operationId: 'getStacConformance', summary: 'STAC API conformance classes',
        tags: ['STAC'],
        querystring: stacViewQuerySchema,
        response: { 200: stacConformanceSchema, ...errors },
      },
    },
    async (_request, reply) => send(reply, JSON_TYPE, { conformsTo: [...STAC_CONFORMANCE] }),
  );

  app.get(
    '/collections',
    {
      schema: {
        operationId: 'listStacCollections', summary: 'The STAC collections: sentinel-2-l1c and sentinel-2-l2a',
        description: "Each collection's extent is that of the products the caller's view holds (the whole globe and an open interval while it holds none).",
        tags: ['STAC'],
        querystring: stacViewQuerySchema,
        response: { 200: stacCollectionsSchema, ...errors },
      },
    },
    async (request, reply) => {
      const extents = await postgres(() => stacLevelExtents(db, viewOf(request)));
      const root = stacRoot(request);
      const query = viewQuery(request.query.sign === 'true');
      return send(reply, JSON_TYPE, {
        collections: STAC_COLLECTIONS.map((c) => collectionDocument(c, extents.find((e) => e.level === c.level), root, query)),
        links: [
          { rel: 'self', href: `${root}/collections${query}`, type: JSON_TYPE },
          { rel: 'root', href: `${root}${query}`, type: JSON_TYPE },
        ],
      });
    },
  );

  app.get(
    '/collections/:collectionId',
    {
      schema: {
        operationId: 'getStacCollection', summary: 'One STAC collection, with the extent of what the caller sees',
        tags: ['STAC'],
        params: stacCollectionParamsSchema,
        querystring: stacViewQuerySchema,
        response: { 200: stacCollectionSchema, ...errorsWith404 },
      },
    },
    async (request, reply) => {
      const info = collectionOf(request.params.collectionId);
      const extents = await postgres(() => stacLevelExtents(db, viewOf(request)));
      return send(reply, JSON_TYPE, collectionDocument(info, extents.find((e) => e.level === info.level), stacRoot(request), viewQuery(request.query.sign === 'true')));
    },
  );

  app.get(
    '/collections/:collectionId/items',
    {
      schema: {
        operationId: 'listStacCollectionItems', summary: "A collection's items, newest first, paged by `next` links",
        description: 'Items of the caller\'s view sorted by `datetime` descending, then id; `next` carries a keyset token (pages never shift when items are added).',
        tags: ['STAC'],
        params: stacCollectionParamsSchema,
        querystring: stacItemsQuerySchema,
        response: { 200: geoJson(stacItemCollectionSchema), ...errorsWith404 },
      },
    },
    async (request, reply) => {
      const info = collectionOf(request.params.collectionId);
      const q = request.query;
      const sign = q.sign === 'true';
      const root = stacRoot(request);
      const self = new URL(request.url, root).href;
      const collection = `${root}/collections/${info.id}${viewQuery(sign)}`;
      const page = await itemPage(
        request,
        q,
        sign,
        (token) => ({ rel: 'next', href: withQuery(self, { token }), type: GEOJSON }),
        [info.level],
        [
          { rel: 'parent', href: collection, type: JSON_TYPE },
          { rel: 'collection', href: collection, type: JSON_TYPE },
        ],
      );
      return send(reply, GEOJSON, page);
    },
  );

  app.get(
    '/collections/:collectionId/items/:itemId',
    {
      schema: {
        operationId: 'getStacItem', summary: 'One STAC item: a cached product, one asset per band file',
        description: '404 when the product is not in the collection or not in the caller\'s view (a tenant sees only the products in its bucket).',
        tags: ['STAC'],
        params: stacItemParamsSchema,
        querystring: stacViewQuerySchema,
        response: { 200: geoJson(stacItemSchema), ...errorsWith404 },
      },
    },
    async (request, reply) => {
      const info = collectionOf(request.params.collectionId);
      const sign = request.query.sign === 'true';
      const href = hrefs(sign);
      const product = await postgres(() => findStacProduct(db, viewOf(request), info.level, request.params.itemId));
      if (!product) throw notFound(`no item ${JSON.stringify(request.params.itemId)} in collection ${info.id}`);
      return send(reply, GEOJSON, await buildStacItem(product, { root: stacRoot(request), query: viewQuery(sign), href }));
    },
  );

  app.get(
    '/search',
    {
      schema: {
        operationId: 'searchStacItemsGet', summary: 'STAC item search (GET): bbox, datetime, ids, collections, paged by `next` links',
        description: 'Items of the caller\'s view matching every given filter, newest `datetime` first. Unknown parameters (e.g. `intersects`, `sortby`, `filter`) are refused with 400.',
        tags: ['STAC'],
        querystring: stacSearchQuerySchema,
        response: { 200: geoJson(stacItemCollectionSchema), ...errors },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const self = new URL(request.url, stacRoot(request)).href;
      const page = await itemPage(request, q, q.sign === 'true', (token) => ({ rel: 'next', href: withQuery(self, { token }), type: GEOJSON }));
      return send(reply, GEOJSON, page);
    },
  );

  app.post(
    '/search',
    {
      schema: {
        operationId: 'searchStacItemsPost', summary: 'STAC item search (POST, JSON body): bbox, datetime, ids, collections, paged by `next` links',
        description: 'As `GET /search`, with arrays for `bbox`, `ids` and `collections`. The `next` link is a POST of the same body with `token` set (`merge: false`). `sign` stays a query parameter.',
        tags: ['STAC'],
        querystring: stacSearchPostQuerySchema,
        body: stacSearchBodySchema,
        response: { 200: geoJson(stacItemCollectionSchema), ...errors },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const sign = request.query.sign === 'true';
      const href = `${stacRoot(request)}/search${viewQuery(sign)}`;
      const page = await itemPage(request, body, sign, (token) => ({ rel: 'next', href, type: GEOJSON, method: 'POST', body: { ...body, token }, merge: false }));
      return send(reply, GEOJSON, page);
    },
  );
  done();
};
