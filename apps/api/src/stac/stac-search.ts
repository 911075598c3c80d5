/**
 * The parameters of STAC Item Search and of a collection's items, checked and turned into the
 * repository's filter and page: `bbox`, `datetime`, `ids`, `collections`, `limit` and the paging
 * `token`. Every bad value is a 400 `invalid_payload` naming the parameter.
 *
 * - `bbox`: `west,south,east,north` (or 6 numbers with heights, ignored), degrees WGS84; west > east
 *   crosses the antimeridian (split into two boxes); south ≤ north.
 * - `datetime`: an RFC 3339 date-time with a zone (`2024-03-24T10:16:49Z`), or an interval
 *   `start/end` where either end may be open (`..` or empty), not both; start ≤ end. Matches items
 *   whose `datetime` equals the instant or lies in the closed interval.
 * - `ids`, `collections`: comma-separated (GET) or arrays (POST); an unknown collection is refused.
 * - `limit`: 1–{@link STAC_LIMIT_MAX} (default {@link STAC_LIMIT_DEFAULT}); a page holds at most
 *   {@link STAC_PAGE_MAX} items whatever the limit (OGC API Features allows a server maximum), and
 *   a `next` link follows while more match.
 * - `token`: the opaque keyset position of a `next` link (the last item's datetime and id).
 *
 * Spec: STAC API Item Search (https://github.com/radiantearth/stac-api-spec/blob/release/v1.0.0/item-search/README.md),
 * OGC API Features Part 1 §7.15 (bbox, datetime, limit), RFC 3339 §5.6.
 */
import { ValidationError, type ProductLevel } from '@scenecache/core';
import type { LonLatBox, StacPagePosition, StacProductFilter, StacView } from '@scenecache/db';
import { collectionById } from './stac-collections.js';

/** Default page size (STAC API Item Search). */
export const STAC_LIMIT_DEFAULT = 10;
/** Largest `limit` accepted (the STAC API's advertised maximum); above is 400. */
export const STAC_LIMIT_MAX = 10_000;
/** Most items one page holds: a larger `limit` gets pages of this size and `next` links. */
export const STAC_PAGE_MAX = 1_000;
/** Most `ids` / `collections` values one search may name. */
export const STAC_MAX_LIST = 1_000;

/** The search parameters as the client sent them (GET: strings; POST: JSON values). */
export interface StacSearchInput {
  readonly bbox?: string | readonly number[] | undefined;
  readonly datetime?: string | undefined;
  readonly ids?: string | readonly string[] | undefined;
  readonly collections?: string | readonly string[] | undefined;
  readonly limit?: number | undefined;
  readonly token?: string | undefined;
}

/** A checked search: the repository's filter, the page and what the `next` link must repeat. */
export interface StacSearch {
  readonly filter: StacProductFilter;
  readonly after: StacPagePosition | undefined;
  /** Items to return on this page (≤ {@link STAC_PAGE_MAX}). */
  readonly pageSize: number;
}

function bad(field: string, message: string): ValidationError {
  return new ValidationError('invalid_payload', `${field}: ${message}`, field);
}

/** A comma-separated GET value or a POST array, as a list (empty entries dropped). */
function listOf(value: string | readonly string[], field: string): string[] {
  const items = (typeof value === 'string' ? value.split(',') : [...value]).map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw bad(field, 'must name at least one value');
  if (items.length > STAC_MAX_LIST) throw bad(field, `at most ${STAC_MAX_LIST} values`);
  if (items.some((s) => s.length > 256)) throw bad(field, 'a value is longer than 256 characters');
  return items;
}

/**
 * `bbox` as boxes with west ≤ east: one, or two when it crosses the antimeridian.
 * @throws ValidationError unless 4 or 6 finite numbers, longitudes in [-180, 180], latitudes in [-90, 90], south ≤ north.
 */
export function parseBbox(value: string | readonly number[]): LonLatBox[] {
  const numbers = typeof value === 'string' ? value.split(',').map((s) => (s.trim() === '' ? NaN : Number(s))) : [...value];
  if (numbers.length !== 4 && numbers.length !== 6) throw bad('bbox', `must be 4 numbers (west,south,east,north) or 6 (with heights), got ${numbers.length}`);
  if (!numbers.every((n) => typeof n === 'number' && Number.isFinite(n))) throw bad('bbox', 'every value must be a number');
  const [w, s, e, n] = numbers.length === 4 ? numbers : [numbers[0]!, numbers[1]!, numbers[3]!, numbers[4]!];
  if (w! < -180 || w! > 180 || e! < -180 || e! > 180) throw bad('bbox', 'longitudes must lie in [-180, 180]');
  if (s! < -90 || s! > 90 || n! < -90 || n! > 90) throw bad('bbox', 'latitudes must lie in [-90, 90]');
  if (s! > n!) throw bad('bbox', `south (${s}) must not be north of north (${n})`);
  if (w! > e!) return [[w!, s!, 180, n!], [-180, s!, e!, n!]];
  return [[w!, s!, e!, n!]];
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 date-time with its zone, as Postgres will read it (upper-case `T` and `Z`), and its
 * instant in ms. @throws ValidationError for anything else, or an impossible date or time.
 */
export function parseDateTime(value: string, field = 'datetime'): { text: string; ms: number } {
  const m = RFC3339.exec(value);
  if (!m) throw bad(field, `${JSON.stringify(value.slice(0, 60))} is not an RFC 3339 date-time with a time zone (e.g. 2024-03-24T10:16:49Z)`);
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const day = new Date(Date.UTC(y, mo - 1, d));
  const dateOk = day.getUTCFullYear() === y && day.getUTCMonth() === mo - 1 && day.getUTCDate() === d;
  const offsetOk = m[9] === undefined || (Number(m[9]) <= 23 && Number(m[10]) <= 59);
  if (!dateOk || h > 23 || mi > 59 || se > 59 || !offsetOk) throw bad(field, `${JSON.stringify(value)} is not a valid date and time`);
  const text = value.toUpperCase();
  return { text, ms: Date.parse(text) };
}

/**
 * `datetime`: an instant (start = end) or an interval with at most one open end.
 * @throws ValidationError for a malformed value, both ends open, or start after end.
 */
export function parseDatetimeFilter(value: string): { start: string | undefined; end: string | undefined } {
  const parts = value.split('/');
  if (parts.length === 1) {
    const instant = parseDateTime(value).text;
    return { start: instant, end: instant };
  }
  if (parts.length !== 2) throw bad('datetime', 'must be a date-time or an interval start/end');
  const open = (s: string) => s === '' || s === '..';
  const [a, b] = parts as [string, string];
  if (open(a) && open(b)) throw bad('datetime', 'an interval may be open at one end only');
  const start = open(a) ? undefined : parseDateTime(a);
  const end = open(b) ? undefined : parseDateTime(b);
  if (start && end && start.ms > end.ms) throw bad('datetime', `the interval starts (${a}) after it ends (${b})`);
  return { start: start?.text, end: end?.text };
}

/** The product levels of `collections`. @throws ValidationError for an unknown collection id. */
export function levelsOf(collections: readonly string[]): ProductLevel[] {
  return [
    ...new Set(
      collections.map((id) => {
        const info = collectionById(id);
        if (!info) throw bad('collections', `unknown collection ${JSON.stringify(id)} (this API has sentinel-2-l1c and sentinel-2-l2a)`);
        return info.level;
      }),
    ),
  ];
}

const POSITION_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

/** The opaque `token` of the page after `position`: base64url of the JSON `[sensedAt, sceneId]`. */
export function encodeSearchToken(position: StacPagePosition): string {
  return Buffer.from(JSON.stringify([position.sensedAt, position.sceneId]), 'utf8').toString('base64url');
}

/** @throws ValidationError (`token`) unless a token {@link encodeSearchToken} made. */
export function decodeSearchToken(token: string): StacPagePosition {
  const invalid = bad('token', 'is not a paging token this API returned');
  if (token.length === 0 || token.length > 600 || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalid;
  let position: unknown;
  try {
    position = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalid;
  }
  if (!Array.isArray(position) || position.length !== 2) throw invalid;
  const [sensedAt, sceneId] = position as [unknown, unknown];
  if (typeof sensedAt !== 'string' || !POSITION_TIME.test(sensedAt) || typeof sceneId !== 'string' || sceneId.length === 0 || sceneId.length > 256) throw invalid;
  return { sensedAt, sceneId };
}

/**
 * Check a search and build the repository's filter for `view`.
 * @param levels - the collection(s) the route fixes (a collection's items), else from `collections`.
 * @throws ValidationError (400 `invalid_payload`, `field` = the parameter) for any bad value.
 */
export function parseStacSearch(input: StacSearchInput, view: StacView, levels?: readonly ProductLevel[]): StacSearch {
  const limit = input.limit ?? STAC_LIMIT_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > STAC_LIMIT_MAX) throw bad('limit', `must be an integer from 1 to ${STAC_LIMIT_MAX}`);
  const datetime = input.datetime === undefined ? undefined : parseDatetimeFilter(input.datetime);
  return {
    filter: {
      view,
      levels: levels ?? (input.collections === undefined ? undefined : levelsOf(listOf(input.collections, 'collections'))),
      ids: input.ids === undefined ? undefined : listOf(input.ids, 'ids'),
      boxes: input.bbox === undefined ? undefined : parseBbox(input.bbox),
      start: datetime?.start,
      end: datetime?.end,
    },
    after: input.token === undefined ? undefined : decodeSearchToken(input.token),
    pageSize: Math.min(limit, STAC_PAGE_MAX),
  };
}
