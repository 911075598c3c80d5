/**
 * Schemas of the `/stac/v1` routes: the query strings, paths and the `POST /search` body as clients
 * send them, and the documents as the API writes them (for the OpenAPI document; the reply
 * serializer checks them). Documents are open objects (`looseObject`): STAC documents carry
 * extension fields by design, and each is validated in the tests against the STAC JSON schemas
 * themselves (fixtures/stac).
 *
 * The values' rules beyond their types (bbox ranges, datetime syntax, collection ids, the token)
 * live in stac-search.ts, which names the parameter at fault.
 */
import { z } from 'zod';
import { STAC_LIMIT_MAX, STAC_MAX_LIST } from './stac-search.js';

/** `?sign=true`: presigned HTTPS asset hrefs instead of `s3://` ones. */
const sign = z
  .enum(['true', 'false'])
  .optional()
  .describe(
    '`true`: asset hrefs are presigned HTTPS GET URLs of the objects (valid STAC_SIGNED_URL_TTL_SECONDS), and every link keeps `sign=true`; otherwise `s3://bucket/key`.',
  );

const bbox = z
  .string()
  .max(200)
  .describe('`west,south,east,north` (or 6 numbers with heights), degrees WGS84; west > east crosses the antimeridian. Items whose bbox overlaps it (edges included).');
const datetime = z
  .string()
  .max(100)
  .describe('RFC 3339 date-time (`2024-03-24T10:16:49Z`), or an interval `start/end` with one end open at most (`..` or empty): items whose `datetime` is that instant or within the closed interval.');
const limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(STAC_LIMIT_MAX)
  .optional()
  .describe('Items per page, 1–10000 (default 10); pages hold at most 1000 items, with a `next` link while more match.');
const token = z.string().max(600).optional().describe('Paging token of a `next` link.');

/** `?sign=` only (landing page, conformance, collections, one item). */
export const stacViewQuerySchema = z.strictObject({ sign });

/** `GET /collections/{collectionId}/items` query. */
export const stacItemsQuerySchema = z.strictObject({ bbox: bbox.optional(), datetime: datetime.optional(), limit, token, sign });

/** `GET /search` query. */
export const stacSearchQuerySchema = z.strictObject({
  bbox: bbox.optional(),
  datetime: datetime.optional(),
  ids: z.string().max(100_000).optional().describe('Comma-separated item ids (product names without .SAFE).'),
  collections: z.string().max(1_000).optional().describe('Comma-separated collection ids: `sentinel-2-l1c`, `sentinel-2-l2a`.'),
  limit,
  token,
  sign,
});

/** `POST /search` body (STAC API Item Search, JSON). */
export const stacSearchBodySchema = z.strictObject({
  bbox: z.array(z.number()).min(4).max(6).optional().describe('`[west, south, east, north]` (or 6 numbers with heights), degrees WGS84.'),
  datetime: datetime.optional(),
  ids: z.array(z.string().max(256)).max(STAC_MAX_LIST).optional(),
  collections: z.array(z.string().max(256)).max(STAC_MAX_LIST).optional(),
  limit: z.number().int().min(1).max(STAC_LIMIT_MAX).optional().describe('Items per page, 1–10000 (default 10).'),
  token,
});

/** `POST /search` query: only `sign`. */
export const stacSearchPostQuerySchema = stacViewQuerySchema;

/** `/collections/{collectionId}`. */
export const stacCollectionParamsSchema = z.strictObject({ collectionId: z.string().min(1).max(64) });

/** `/collections/{collectionId}/items/{itemId}`. */
export const stacItemParamsSchema = z.strictObject({ collectionId: z.string().min(1).max(64), itemId: z.string().min(1).max(256) });

/** A STAC Link Object. */
export const stacLinkSchema = z.looseObject({
  rel: z.string(),
  href: z.string(),
  type: z.string().optional(),
  title: z.string().optional(),
  method: z.string().optional(),
  body: z.record(z.string(), z.unknown()).optional(),
  merge: z.boolean().optional(),
});

/** The landing page (a STAC Catalog with `conformsTo`). */
export const stacLandingSchema = z.looseObject({
  type: z.literal('Catalog'),
  stac_version: z.string(),
  stac_extensions: z.array(z.string()),
  id: z.string(),
  title: z.string(),
  description: z.string(),
  conformsTo: z.array(z.string()),
  links: z.array(stacLinkSchema),
});

/** `GET /conformance`. */
export const stacConformanceSchema = z.object({ conformsTo: z.array(z.string()) });

/** A STAC 1.1 Collection. */
export const stacCollectionSchema = z.looseObject({
  type: z.literal('Collection'),
  stac_version: z.string(),
  stac_extensions: z.array(z.string()),
  id: z.string(),
  title: z.string(),
  description: z.string(),
  license: z.string(),
  extent: z.object({
    spatial: z.object({ bbox: z.array(z.array(z.number())) }),
    temporal: z.object({ interval: z.array(z.array(z.string().nullable())) }),
  }),
  links: z.array(stacLinkSchema),
});

/** `GET /collections`. */
export const stacCollectionsSchema = z.object({ collections: z.array(stacCollectionSchema), links: z.array(stacLinkSchema) });

/** An asset of one band file. */
const stacAssetSchema = z.looseObject({
  href: z.string().describe('`s3://bucket/key`, or with `?sign=true` a presigned HTTPS URL.'),
  type: z.string(),
  title: z.string().optional(),
  roles: z.array(z.string()),
  bands: z.array(z.looseObject({ name: z.string() })).optional().describe('STAC 1.1 bands: name, eo:common_name, eo:center_wavelength and eo:full_width_half_max (µm).'),
  gsd: z.number().optional(),
  'file:size': z.number().int().optional().describe('Bytes.'),
  'file:checksum': z.string().optional().describe('Multihash of the SHA3-256: `1620` + 64 lower-case hex digits.'),
  'proj:epsg': z.number().int().optional(),
  'proj:shape': z.array(z.number().int()).optional().describe('`[rows, columns]` of the band grid.'),
  'proj:transform': z.array(z.number()).optional().describe('`[xres, 0, ulx, 0, -yres, uly]` (GDAL order), metres.'),
  'proj:bbox': z.array(z.number()).optional().describe('`[minx, miny, maxx, maxy]` in the tile CRS, metres.'),
});

/** A STAC 1.1 Item (GeoJSON Feature). */
export const stacItemSchema = z.looseObject({
  type: z.literal('Feature'),
  stac_version: z.string(),
  stac_extensions: z.array(z.string()),
  id: z.string().describe('The product name without .SAFE.'),
  collection: z.string(),
  geometry: z.looseObject({ type: z.string(), coordinates: z.unknown() }).nullable().describe('The product footprint (WGS84); null when the catalogue gave none.'),
  bbox: z.array(z.number()).optional(),
  properties: z.looseObject({ datetime: z.string() }),
  links: z.array(stacLinkSchema),
  assets: z.record(z.string(), stacAssetSchema).describe('One asset per band file, keyed by band id (`B04`, `B04_20m`, `SCL`).'),
});

/** An ItemCollection (GeoJSON FeatureCollection): a page of items. */
export const stacItemCollectionSchema = z.looseObject({
  type: z.literal('FeatureCollection'),
  features: z.array(stacItemSchema),
  links: z.array(stacLinkSchema).describe('`self`, `root`, and `next` while more items match.'),
  numberReturned: z.number().int(),
});

export type StacSearchQuery = z.infer<typeof stacSearchQuerySchema>;
export type StacSearchBody = z.infer<typeof stacSearchBodySchema>;
