/**
 * Catalogue lookup: the OData product of a SAFE name.
 *
 * `GET {catalogueUrl}/Products?$filter=Name eq '<name>.SAFE'` answers `{"value": [{Id, Name,
 * ContentLength, Online, S3Path, Checksum[], ContentDate, …}]}`; errors carry a `detail` field.
 * The catalogue needs no token. Source: documentation.dataspace.copernicus.eu/APIs/OData.html
 * ("Query by name"); real answers in fixtures `eodag_cop_dataspace_odata_search_S2_L1C.json`
 * (2024 format: MD5 + BLAKE3 checksums) and `ftep_cdse_odata_products_search_S2_L2A.json`
 * (early-2023 format: `Checksum: []`, `EvictionDate: ""`).
 */
import fetch, { type Response } from 'node-fetch';
import { UpstreamError } from '@scenecache/core';
import { abortReason, parseRetryAfterMs } from './retry-policy.js';
import { errorForStatus, linkedController, networkError, readBodyText, readErrorDetail, type AgentChooser } from './upstream-http.js';

/** One checksum of the product's zip as the catalogue reports it (OData `Checksum[]` item). */
export interface CdseChecksum {
  /** `MD5` or `BLAKE3`: hex digests of the whole product zip, not of single files. */
  readonly Algorithm: string;
  readonly Value: string;
  /** ISO 8601, when the catalogue says. */
  readonly ChecksumDate: string | undefined;
}

/** A GeoJSON Polygon or MultiPolygon (RFC 7946), WGS84 longitude/latitude in degrees. */
export interface GeoJsonFootprint {
  readonly type: 'Polygon' | 'MultiPolygon';
  readonly coordinates: unknown;
}

/**
 * A product in the CDSE catalogue: the fields of the OData `Product` entity we use, validated,
 * under their OData names (other fields such as `Footprint` (WKT) or `Attributes` are dropped).
 */
export interface CdseProduct {
  /** A UUID: the key of every download URL (`Products(<Id>)`). */
  readonly Id: string;
  /** The SAFE folder name, `<sceneId>.SAFE`. */
  readonly Name: string;
  /** Size of the product's zip in bytes; band files are parts of it. */
  readonly ContentLength: number;
  /** `false` when the product sits in the long-term archive and must be ordered before download. */
  readonly Online: boolean;
  /** The product's path in the eodata S3 bucket, e.g. `/eodata/Sentinel-2/MSI/L2A/2023/02/09/<Name>`. */
  readonly S3Path: string;
  /** Checksums of the zip; empty for products catalogued before 2023's checksum rollout. */
  readonly Checksum: readonly CdseChecksum[];
  /** Sensing interval, ISO 8601. */
  readonly ContentDate: { readonly Start: string; readonly End: string };
  /**
   * The product's footprint as GeoJSON (`GeoFootprint`, in the 2024 answer format; fixture
   * `eodag_cop_dataspace_odata_search_S2_L1C.json`); undefined when the answer has none or it is
   * not a Polygon/MultiPolygon with coordinate arrays (early-2023 answers lack it).
   */
  readonly GeoFootprint?: GeoJsonFootprint | undefined;
}

/** Options of {@link lookupProduct}. */
export interface ProductLookupOptions {
  /** Catalogue base URL, e.g. `https://catalogue.dataspace.copernicus.eu/odata/v1`. */
  readonly catalogueUrl: string;
  readonly agent?: AgentChooser | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Give up on an answer after this long (ms). @defaultValue 30000 */
  readonly timeoutMs?: number | undefined;
}

/**
 * The search URL for one SAFE name: `{catalogueUrl}/Products?$filter=Name%20eq%20'<name>'`.
 * The filter is percent-encoded; a `'` in the name is doubled, as OData string literals require.
 */
export function productSearchUrl(catalogueUrl: string, safeName: string): string {
  const filter = `Name eq '${safeName.replace(/'/g, "''")}'`;
  return `${catalogueUrl.replace(/\/+$/, '')}/Products?$filter=${encodeURIComponent(filter)}`;
}

/**
 * Look a product up by its SAFE name.
 *
 * @param safeName - `<sceneId>.SAFE` (see `parseProductName(...).safeName`).
 * @throws UpstreamError `product_not_found` (not retryable, HTTP 404) when the catalogue does not
 *   know the name; `upstream_unavailable` (retryable) on 5xx, timeouts and network errors, or a
 *   body that is not JSON; `upstream_unavailable` (not retryable) on a JSON body of another shape or
 *   another 4xx (the message carries the catalogue's `detail`); `upstream_rate_limited` on 429.
 * @throws the signal's reason when `signal` aborts.
 */
export async function lookupProduct(safeName: string, options: ProductLookupOptions): Promise<CdseProduct> {
  const what = `product lookup of ${safeName}`;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const link = linkedController(options.signal);
  const timer = setTimeout(() => link.controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    let response: Response;
    let text: string;
    try {
      response = await fetch(productSearchUrl(options.catalogueUrl, safeName), {
        headers: { Accept: 'application/json' },
        agent: options.agent,
        signal: link.signal,
      });
      if (!response.ok) throw errorForStatus(response.status, what, await readErrorDetail(response), parseRetryAfterMs(response.headers.get('retry-after')));
      text = await readBodyText(response.body, 16 * 1024 * 1024);
    } catch (err) {
      if (options.signal?.aborted) throw abortReason(options.signal);
      if (err instanceof UpstreamError) throw err;
      throw networkError(what, link.signal.aborted ? link.signal.reason : err);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new UpstreamError('upstream_unavailable', `CDSE ${what}: the answer is not JSON (${text.slice(0, 100)})`, { retryable: true, httpStatus: 503, cause: err });
    }
    return parseProductSearch(json, safeName);
  } finally {
    clearTimeout(timer);
    link.dispose();
  }
}

/**
 * Pick and validate the product named `safeName` in an OData `Products` search answer.
 *
 * @throws UpstreamError `product_not_found` (not retryable, HTTP 404) when `value` holds no product
 *   of that name; `upstream_unavailable` (not retryable) when the answer does not have the expected
 *   shape (the message names the field).
 */
export function parseProductSearch(json: unknown, safeName: string): CdseProduct {
  const body = record(json, 'the answer');
  const value = body.value;
  if (!Array.isArray(value)) throw shapeError('value is not an array');
  const index = value.findIndex((p) => isRecord(p) && p.Name === safeName);
  if (index < 0) {
    const message = value.length === 0
      ? `CDSE catalogue has no product named ${safeName}`
      : `CDSE catalogue returned ${value.length} product(s), none named ${safeName}`;
    throw new UpstreamError('product_not_found', message, { retryable: false, httpStatus: 404 });
  }
  return parseProduct(value[index], `value[${index}]`);
}

/** Validate one OData `Product` entity. @throws UpstreamError `upstream_unavailable` (not retryable) naming the bad field. */
export function parseProduct(raw: unknown, where = 'product'): CdseProduct {
  const p = record(raw, where);
  const checksumsRaw = p.Checksum ?? [];
  if (!Array.isArray(checksumsRaw)) throw shapeError(`${where}.Checksum is not an array`);
  const checksums = checksumsRaw.map((c, i) => {
    const r = record(c, `${where}.Checksum[${i}]`);
    return Object.freeze({
      Algorithm: string(r, 'Algorithm', `${where}.Checksum[${i}]`),
      Value: string(r, 'Value', `${where}.Checksum[${i}]`),
      ChecksumDate: typeof r.ChecksumDate === 'string' ? r.ChecksumDate : undefined,
    });
  });
  const contentDate = record(p.ContentDate, `${where}.ContentDate`);
  const contentLength = p.ContentLength;
  if (typeof contentLength !== 'number' || !Number.isSafeInteger(contentLength) || contentLength < 0) {
    throw shapeError(`${where}.ContentLength is not a byte count`);
  }
  if (typeof p.Online !== 'boolean') throw shapeError(`${where}.Online is not a boolean`);
  return Object.freeze({
    Id: string(p, 'Id', where),
    Name: string(p, 'Name', where),
    ContentLength: contentLength,
    Online: p.Online,
    S3Path: string(p, 'S3Path', where),
    Checksum: Object.freeze(checksums),
    ContentDate: Object.freeze({ Start: string(contentDate, 'Start', `${where}.ContentDate`), End: string(contentDate, 'End', `${where}.ContentDate`) }),
    GeoFootprint: geoFootprint(p.GeoFootprint),
  });
}

/** `GeoFootprint` when it is a GeoJSON Polygon or MultiPolygon with an array of coordinates. */
function geoFootprint(v: unknown): GeoJsonFootprint | undefined {
  if (!isRecord(v) || (v.type !== 'Polygon' && v.type !== 'MultiPolygon') || !Array.isArray(v.coordinates)) return undefined;
  return Object.freeze({ type: v.type, coordinates: v.coordinates });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function record(v: unknown, where: string): Record<string, unknown> {
  if (!isRecord(v)) throw shapeError(`${where} is not an object`);
  return v;
}

function string(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw shapeError(`${where}.${key} is not a non-empty string`);
  return v;
}

function shapeError(why: string): UpstreamError {
  return new UpstreamError('upstream_unavailable', `unexpected CDSE catalogue answer: ${why}`, { retryable: false });
}
