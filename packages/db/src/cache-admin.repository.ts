/**
 * Cache administration on `global_scene_cache` (the admin API's `/v1/admin/cache/*`): select
 * scenes by id or by a name pattern, invalidate them (whole rows or some bands), find and delete
 * invalid rows for the cleanup, and list entries by pages. S3 is not touched here:
 * @scenecache/global-cache (`GlobalCacheAdmin`) deletes the objects and calls these in the order
 * that keeps the table honest.
 *
 * How the worker treats what this module writes (@scenecache/global-cache's `GlobalCache`):
 * - a row with `is_valid = false` serves nothing, and no band is registered into it. The next job
 *   for the scene first resets the product, under the scene lock held exclusive: it deletes the
 *   objects the row describes and empties the row (valid again, no bands), then downloads the bands
 *   it asks for. A job whose band finished streaming after the invalidation has its registration
 *   refused and runs again, resetting the product first; its own verified upload, which the row
 *   never described, survives the reset and is adopted;
 * - a band missing from a valid row's `bands` is downloaded again, but an object left at its key
 *   with the manifest's SHA3-256 in its metadata is *adopted* instead — so invalidating single
 *   bands takes deleting their objects too (done by the caller before {@link removeBandEntries}).
 *
 * Scene name patterns ({@link parseScenePattern}) are globs on the canonical product name (no
 * `.SAFE`): `*` any run of characters, `?` one character, everything else literal (translated to
 * SQL `LIKE` with `%`, `_` and `\` escaped), matched against the whole name.
 */
import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { ValidationError } from '@scenecache/core';
import type { Queryable } from './database.js';
import { decodePageCursor, encodePageCursor, invalidCursor } from './page-cursor.js';
import type { CachedBand, SceneCacheRow } from './schema.js';
import { deleteBandEntries } from './scene-cache.repository.js';

/** A validated scene name pattern (see {@link parseScenePattern}). */
export interface ScenePattern {
  /** The glob as matched: upper case, without a trailing `.SAFE`. */
  readonly glob: string;
  /** The same as a SQL `LIKE` pattern with escape character `\`. */
  readonly like: string;
  /** True when the glob has no literal character (`*`, `**`, `*?*`): it matches every scene (or none). */
  readonly matchesEveryScene: boolean;
}

/** Longest pattern accepted (characters, `.SAFE` excluded); a product name has 60. */
export const MAX_SCENE_PATTERN_LENGTH = 100;

const PATTERN_RE = /^[A-Z0-9_*?]+$/;

/**
 * Validate a scene name glob and translate it to SQL `LIKE`. Letters are upper-cased (product
 * names are upper case) and a trailing `.SAFE` is dropped.
 *
 * @param field - the request field to name in errors. @defaultValue `pattern`
 * @throws ValidationError `invalid_payload` for an empty pattern, one longer than
 *   {@link MAX_SCENE_PATTERN_LENGTH}, or a character other than letters, digits, `_`, `*`, `?`.
 */
export function parseScenePattern(input: string, field = 'pattern'): ScenePattern {
  let glob = input.toUpperCase();
  if (glob.endsWith('.SAFE')) glob = glob.slice(0, -'.SAFE'.length);
  if (glob.length === 0) throw new ValidationError('invalid_payload', `${field}: must not be empty`, field);
  if (glob.length > MAX_SCENE_PATTERN_LENGTH) {
    throw new ValidationError('invalid_payload', `${field}: at most ${MAX_SCENE_PATTERN_LENGTH} characters`, field);
  }
  if (!PATTERN_RE.test(glob)) {
    throw new ValidationError(
      'invalid_payload',
      `${field}: ${JSON.stringify(input)} is not a scene name pattern: use letters, digits and _ (literal), * (any characters) and ? (one character), e.g. S2B_MSIL2A_2024*_T32TNS_*`,
      field,
    );
  }
  let like = '';
  for (const ch of glob) {
    if (ch === '*') like += '%';
    else if (ch === '?') like += '_';
    else if (ch === '%' || ch === '_' || ch === '\\') like += `\\${ch}`;
    else like += ch;
  }
  return Object.freeze({ glob, like, matchesEveryScene: /^[*?]+$/.test(glob) });
}

/** Which scenes an admin operation applies to: one scene id (canonical, no `.SAFE`) or a pattern. */
export type SceneSelector = { readonly sceneId: string } | { readonly pattern: ScenePattern };

/** `scene_id` matches the selector (as a WHERE expression). */
function matches(selector: SceneSelector): RawBuilder<SqlBool> {
  const column = sql.ref('global_scene_cache.scene_id');
  if ('sceneId' in selector) return sql<SqlBool>`${column} = ${selector.sceneId}`;
  return sql<SqlBool>`${column} LIKE ${selector.pattern.like} ESCAPE '\\'`;
}

/** Scenes affected by an operation: how many, how many bytes, and which (capped list). */
export interface AffectedScenes {
  /** Rows affected. */
  count: number;
  /** Bytes of the cached content affected (the rows' `total_bytes`, or the bands' sizes). */
  bytes: number;
  /** Scene ids, sorted, at most the cap the caller gave. */
  sceneIds: string[];
}

function summarize(rows: ReadonlyArray<{ scene_id: string; bytes: number }>, listCap: number): AffectedScenes {
  const sceneIds = rows.map((r) => r.scene_id).sort();
  return { count: rows.length, bytes: rows.reduce((sum, r) => sum + Number(r.bytes), 0), sceneIds: sceneIds.slice(0, listCap) };
}

/**
 * Invalidate whole scenes: `is_valid = false`, `updated_at = now()` on every *valid* row the
 * selector matches (the seed's "mark invalid"; rows already invalid are left alone, so repeating
 * it changes nothing). Objects stay in the bucket: the next job for the scene deletes them when it
 * resets the product before downloading again; {@link deleteInvalidEntry} removes rows nobody asked
 * for again.
 *
 * @param options.dryRun - only report what would be invalidated.
 * @param options.listCap - most scene ids returned.
 */
export async function invalidateSceneEntries(
  db: Queryable,
  selector: SceneSelector,
  options: { dryRun: boolean; listCap: number },
): Promise<AffectedScenes> {
  if (options.dryRun) {
    const rows = await db
      .selectFrom('global_scene_cache')
      .select(['scene_id', 'total_bytes as bytes'])
      .where(matches(selector))
      .where('is_valid', '=', true)
      .execute();
    return summarize(rows, options.listCap);
  }
  const rows = await db
    .updateTable('global_scene_cache')
    .set({ is_valid: false, updated_at: sql`now()` })
    .where(matches(selector))
    .where('is_valid', '=', true)
    .returning(['scene_id', 'total_bytes as bytes'])
    .execute();
  return summarize(rows, options.listCap);
}

/** A valid row holding some of the bands to invalidate (see {@link findBandInvalidationTargets}). */
export interface BandInvalidationTarget {
  sceneId: string;
  /** The bucket the row's objects are in. */
  storageBucket: string;
  /** The row's entries of the requested bands (only those it holds), band id → entry. */
  bands: Record<string, CachedBand>;
}

/**
 * Valid rows matched by the selector that hold at least one of `bandIds`, by `scene_id`, at most
 * `limit` (ask for one more than you accept to tell "too many").
 *
 * @param bandIds - canonical band ids (`B04`, `B04_20m`, `SCL`).
 */
export async function findBandInvalidationTargets(
  db: Queryable,
  selector: SceneSelector,
  bandIds: readonly string[],
  limit: number,
): Promise<BandInvalidationTarget[]> {
  const rows = await db
    .selectFrom('global_scene_cache')
    .select(['scene_id', 'storage_bucket', 'bands'])
    .where(matches(selector))
    .where('is_valid', '=', true)
    .where(sql<SqlBool>`bands ?| ${[...bandIds]}::text[]`)
    .orderBy('scene_id')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    sceneId: row.scene_id,
    storageBucket: row.storage_bucket,
    bands: Object.fromEntries(bandIds.flatMap((id) => (row.bands[id] ? [[id, row.bands[id]] as const] : []))),
  }));
}

/**
 * Drop band entries from a scene's row, but only those still equal to `expected` (jsonb
 * equality): an entry re-registered meanwhile by a job (a fresh, verified download) is kept.
 * Recomputes `total_bytes`, sets `updated_at`; the row's validity is left as it is. Runs in a
 * transaction of its own unless `db` already is one (the row is locked while comparing).
 *
 * @param expected - band id → the entry as read before its object was deleted.
 * @returns the band ids dropped (empty when none was still there unchanged, or no row).
 */
export async function removeBandEntries(db: Queryable, sceneId: string, expected: Readonly<Record<string, CachedBand>>): Promise<string[]> {
  const run = async (trx: Queryable): Promise<string[]> => {
    const row = await trx
      .selectFrom('global_scene_cache')
      .select(sql<string[]>`ARRAY(SELECT x.key FROM jsonb_each(${JSON.stringify(expected)}::jsonb) AS x WHERE global_scene_cache.bands -> x.key = x.value ORDER BY 1)`.as('ids'))
      .where('scene_id', '=', sceneId)
      .forUpdate()
      .executeTakeFirst();
    if (!row || row.ids.length === 0) return [];
    await deleteBandEntries(trx, sceneId, row.ids);
    return row.ids;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/** An invalid row, as the cleanup reads or deletes it. */
export interface InvalidEntry {
  sceneId: string;
  storageBucket: string;
  /** Key prefix of the scene's objects (no trailing `/`). */
  storagePath: string;
  bands: Record<string, CachedBand>;
  /** Bytes the row describes. */
  totalBytes: number;
  /** When it was invalidated (or last changed). */
  updatedAt: Date;
}

const INVALID_ENTRY_COLUMNS = ['scene_id', 'storage_bucket', 'storage_path', 'bands', 'total_bytes', 'updated_at'] as const;

function toInvalidEntry(row: Pick<SceneCacheRow, (typeof INVALID_ENTRY_COLUMNS)[number]>): InvalidEntry {
  return {
    sceneId: row.scene_id,
    storageBucket: row.storage_bucket,
    storagePath: row.storage_path,
    bands: row.bands,
    totalBytes: Number(row.total_bytes),
    updatedAt: row.updated_at,
  };
}

/** `updated_at` older than `olderThanDays` days (0: any time before now). */
function olderThan(olderThanDays: number): RawBuilder<SqlBool> {
  return sql<SqlBool>`global_scene_cache.updated_at < now() - make_interval(days => ${olderThanDays})`;
}

/**
 * Invalid rows last changed more than `olderThanDays` days ago, oldest first (then by scene id).
 *
 * @param options.limit - most rows returned; `more` tells whether others qualify too.
 */
export async function findInvalidEntries(db: Queryable, options: { olderThanDays: number; limit: number }): Promise<{ entries: InvalidEntry[]; more: boolean }> {
  const rows = await db
    .selectFrom('global_scene_cache')
    .select(INVALID_ENTRY_COLUMNS)
    .where('is_valid', '=', false)
    .where(olderThan(options.olderThanDays))
    .orderBy('updated_at')
    .orderBy('scene_id')
    .limit(options.limit + 1)
    .execute();
  return { entries: rows.slice(0, options.limit).map(toInvalidEntry), more: rows.length > options.limit };
}

/**
 * Delete one scene's row if it is still invalid and older than `olderThanDays` days (a job may
 * have registered the scene again since it was found).
 *
 * @returns the deleted row; `undefined` when it no longer qualifies.
 */
export async function deleteInvalidEntry(db: Queryable, sceneId: string, olderThanDays: number): Promise<InvalidEntry | undefined> {
  const row = await db
    .deleteFrom('global_scene_cache')
    .where('scene_id', '=', sceneId)
    .where('is_valid', '=', false)
    .where(olderThan(olderThanDays))
    .returning(INVALID_ENTRY_COLUMNS)
    .executeTakeFirst();
  return row && toInvalidEntry(row);
}

/** Most rows one {@link listCacheEntries} page returns. */
export const MAX_CACHE_ENTRY_LIST_LIMIT = 500;
/** Rows per {@link listCacheEntries} page when no limit is given. */
export const DEFAULT_CACHE_ENTRY_LIST_LIMIT = 50;

/** Filters (combined with AND) and page of {@link listCacheEntries}. */
export interface CacheEntriesQuery {
  /** Only valid (`true`) or only invalidated (`false`) rows. */
  valid?: boolean | undefined;
  /** Scene ids starting with this (literal, upper case). */
  sceneIdPrefix?: string | undefined;
  /** Scene ids matching this glob. */
  pattern?: ScenePattern | undefined;
  /** 1…{@link MAX_CACHE_ENTRY_LIST_LIMIT}. @defaultValue {@link DEFAULT_CACHE_ENTRY_LIST_LIMIT} */
  limit?: number | undefined;
  /** `nextCursor` of the previous page; omitted: the first page. */
  cursor?: string | undefined;
}

/** One page of {@link listCacheEntries}. */
export interface CacheEntryPage {
  /** By `scene_id` ascending. */
  items: SceneCacheRow[];
  /** Cursor of the next page; `null` on the last page. */
  nextCursor: string | null;
}

const CURSOR_SCENE_ID_RE = /^[A-Z0-9_]{1,100}$/;

/** The position after `sceneId`, as an opaque cursor. */
function encodeSceneCursor(sceneId: string): string {
  return encodePageCursor(['scene', sceneId]);
}

/** @throws ValidationError `invalid_payload` (field `cursor`) for anything {@link encodeSceneCursor} did not make. */
function decodeSceneCursor(cursor: string): string {
  const [kind, sceneId] = decodePageCursor(cursor, 2);
  if (kind !== 'scene' || typeof sceneId !== 'string' || !CURSOR_SCENE_ID_RE.test(sceneId)) throw invalidCursor();
  return sceneId;
}

/**
 * One page of cache rows (valid and invalid), by `scene_id`, with keyset pagination on the unique
 * `scene_id`: rows added or removed between pages never make a page repeat or skip another row.
 *
 * @throws ValidationError `invalid_payload` with field `cursor` (not a cursor this function made)
 *   or `limit` (outside 1…{@link MAX_CACHE_ENTRY_LIST_LIMIT}).
 */
export async function listCacheEntries(db: Queryable, query: CacheEntriesQuery = {}): Promise<CacheEntryPage> {
  const limit = query.limit ?? DEFAULT_CACHE_ENTRY_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_CACHE_ENTRY_LIST_LIMIT) {
    throw new ValidationError('invalid_payload', `limit must be an integer from 1 to ${MAX_CACHE_ENTRY_LIST_LIMIT}`, 'limit');
  }
  const after = query.cursor === undefined ? undefined : decodeSceneCursor(query.cursor);
  let select = db.selectFrom('global_scene_cache').selectAll();
  if (query.valid !== undefined) select = select.where('is_valid', '=', query.valid);
  if (query.sceneIdPrefix !== undefined) select = select.where(sql<SqlBool>`starts_with(scene_id, ${query.sceneIdPrefix})`);
  if (query.pattern !== undefined) select = select.where(matches({ pattern: query.pattern }));
  if (after !== undefined) select = select.where('scene_id', '>', after);
  // One row more than asked tells whether there is a next page.
  const rows = await select.orderBy('scene_id').limit(limit + 1).execute();
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? encodeSceneCursor(last.scene_id) : null };
}
