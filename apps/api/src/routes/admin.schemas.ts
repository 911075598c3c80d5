/**
 * Schemas of the `/v1/admin` routes (cache administration): bodies, query string and replies.
 * Shapes are checked here (zod, also the OpenAPI document); the meaning of a product name and of
 * band ids is checked by {@link toInvalidationInput} with the domain's own errors
 * (`invalid_product_name`, `unknown_band`, `band_not_in_level`), as `POST /v1/downloads` does.
 */
import { z } from 'zod';
import { MAX_BANDS_PER_JOB, parseProductName, resolveBand, ScenecacheError, type ProductLevel } from '@scenecache/core';
import {
  DEFAULT_CACHE_ENTRY_LIST_LIMIT,
  MAX_CACHE_ENTRY_LIST_LIMIT,
  MAX_SCENE_PATTERN_LENGTH,
  parseScenePattern,
  type SceneSelector,
} from '@scenecache/db';
import { cachedSceneSchema } from './cache.schemas.js';

/** Most scene ids an admin reply lists; `scenes_truncated` tells when there were more. */
export const ADMIN_SCENE_LIST_CAP = 1000;
/** Most scenes one band invalidation may touch (each costs S3 deletes); narrow the pattern beyond. */
export const MAX_BAND_INVALIDATION_SCENES = 1000;
/** Most invalid rows one cleanup request deletes (`limit`); `more` tells when others remain. */
export const MAX_CLEANUP_LIMIT = 1000;
/** Rows one cleanup request deletes when no `limit` is given. */
export const DEFAULT_CLEANUP_LIMIT = 100;

/** A glob as sent (`.SAFE` allowed); validated by `parseScenePattern`. */
const patternText = z.string().max(MAX_SCENE_PATTERN_LENGTH + '.SAFE'.length);

/** A pattern parsed into a {@link ScenePattern}-carrying value; errors name the field. */
const pattern = patternText.transform((value, ctx) => {
  try {
    return parseScenePattern(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof ScenecacheError ? err.message.replace(/^pattern: /, '') : String(err) });
    return z.NEVER;
  }
});

/**
 * `POST /v1/admin/cache/invalidate` body: exactly one of `scene_id` or `pattern`.
 */
export const invalidateBodySchema = z
  .strictObject({
    /** A Sentinel-2 product name, with or without `.SAFE`. */
    scene_id: z.string().min(1).max(105).optional().describe('A Sentinel-2 product name, with or without .SAFE'),
    /** Glob on product names: `*` any characters, `?` one; the rest literal. */
    pattern: pattern
      .optional()
      .describe(
        'Glob on the canonical product name (no .SAFE), matched against the whole name: `*` any run of characters, `?` one character, letters/digits/`_` literal. A pattern without any literal character (`*`) needs `all: true`.',
      ),
    /** Confirms a pattern that matches every scene. */
    all: z.boolean().optional().describe('Set to true to confirm a pattern that has no literal character (it matches every cached scene)'),
    /** Only these bands (canonical or with resolution suffix); omitted: the whole scene. */
    bands: z
      .array(z.string().min(1).max(16))
      .min(1)
      .max(MAX_BANDS_PER_JOB)
      .optional()
      .describe('Only these bands (their objects are deleted from the global bucket at once); omitted: the whole scene is marked invalid'),
    /** Report what would be invalidated; change nothing. */
    dry_run: z.boolean().default(false),
  })
  .superRefine((body, ctx) => {
    if ((body.scene_id === undefined) === (body.pattern === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['scene_id'], message: 'give exactly one of scene_id or pattern' });
      return;
    }
    if (body.all !== undefined && body.pattern === undefined) {
      ctx.addIssue({ code: 'custom', path: ['all'], message: 'all confirms a pattern; it is not allowed with scene_id' });
    } else if (body.pattern?.matchesEveryScene && body.all !== true) {
      ctx.addIssue({
        code: 'custom',
        path: ['pattern'],
        message: `${JSON.stringify(body.pattern.glob)} matches every cached scene: send "all": true to confirm (try "dry_run": true first)`,
      });
    }
  });
export type InvalidateBody = z.output<typeof invalidateBodySchema>;

/** What {@link toInvalidationInput} makes of a body. */
export interface InvalidationInput {
  selector: SceneSelector;
  /** Canonical band ids, sorted, no duplicates; `undefined`: whole scenes. */
  bands: string[] | undefined;
  dryRun: boolean;
}

/** Canonical id of a band valid at `level`, or at either level when unknown (a pattern). */
function canonicalBand(level: ProductLevel | undefined, band: string, field: string): string {
  if (level !== undefined) return resolveBand(level, band, field).id;
  try {
    return resolveBand('L2A', band, field).id;
  } catch (err) {
    // B10 exists in L1C only; an unknown name fails for both levels with L1C's message.
    try {
      return resolveBand('L1C', band, field).id;
    } catch {
      throw err;
    }
  }
}

/**
 * The meaning of an invalidation body: the product name parsed (canonical, no `.SAFE`) and the
 * bands resolved for its level (for a pattern: bands that exist at either level).
 *
 * @throws ValidationError `invalid_product_name` (field `scene_id`), `unknown_band` or
 *   `band_not_in_level` (field `bands[i]`).
 */
export function toInvalidationInput(body: InvalidateBody): InvalidationInput {
  let selector: SceneSelector;
  let level: ProductLevel | undefined;
  if (body.scene_id !== undefined) {
    const product = parseProductName(body.scene_id);
    selector = { sceneId: product.sceneId };
    level = product.level;
  } else {
    selector = { pattern: body.pattern! };
  }
  const bands = body.bands && [...new Set(body.bands.map((band, i) => canonicalBand(level, band, `bands[${i}]`)))].sort();
  return { selector, bands, dryRun: body.dry_run };
}

/** `POST /v1/admin/cache/invalidate` reply. */
export const invalidateReplySchema = z.object({
  dry_run: z.boolean(),
  /** Scenes invalidated (whole rows: rows set invalid; with `bands`: rows that lost at least one band). */
  invalidated: z.number().int(),
  /** Bytes of the cached content invalidated (rows' total_bytes, or the bands' sizes). */
  bytes: z.number().int(),
  /** Canonical band ids invalidated; absent for whole scenes. */
  bands: z.array(z.string()).optional(),
  /** The scene ids, sorted, at most ADMIN_SCENE_LIST_CAP (1000). */
  scenes: z.array(z.string()),
  /** Whether `scenes` was cut at the cap. */
  scenes_truncated: z.boolean(),
});
export type InvalidateReply = z.infer<typeof invalidateReplySchema>;

/** `POST /v1/admin/cache/cleanup` body. */
export const cleanupBodySchema = z.strictObject({
  /** Invalid rows invalidated (last changed) more than this many days ago; 0: every invalid row. */
  older_than_days: z.number().int().min(0).max(36_500).describe('Delete rows invalidated more than this many days ago (0: every invalid row)'),
  /** Most rows deleted by this request. */
  limit: z.number().int().min(1).max(MAX_CLEANUP_LIMIT).default(DEFAULT_CLEANUP_LIMIT).describe(`Most rows this request deletes (oldest first); \`more\` says whether others remain`),
  dry_run: z.boolean().default(false),
});
export type CleanupBody = z.output<typeof cleanupBodySchema>;

/** `POST /v1/admin/cache/cleanup` reply. */
export const cleanupReplySchema = z.object({
  dry_run: z.boolean(),
  /** Rows deleted (dry run: rows that would be). */
  deleted: z.number().int(),
  /** Bytes removed from the global bucket (dry run: bytes the rows describe). */
  bytes_freed: z.number().int(),
  /** Objects removed from the global bucket (dry run: band objects the rows describe). */
  objects_deleted: z.number().int(),
  /** The deleted scene ids, oldest invalidation first, at most ADMIN_SCENE_LIST_CAP. */
  scenes: z.array(z.string()),
  scenes_truncated: z.boolean(),
  /** Scenes left for later because a job was downloading them at that moment (advisory lock held). */
  skipped: z.array(z.string()),
  /** Whether more rows qualify than `limit`: run the cleanup again. */
  more: z.boolean(),
});
export type CleanupReply = z.infer<typeof cleanupReplySchema>;

/** `GET /v1/admin/cache/entries` query. */
export const cacheEntriesQuerySchema = z.strictObject({
  /** `true`: valid rows only; `false`: invalidated rows only. */
  valid: z
    .enum(['true', 'false'])
    .transform((value) => value === 'true')
    .optional(),
  /** Scene ids starting with this (letters upper-cased). */
  scene_id_prefix: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,100}$/, 'must be the start of a product name (letters, digits, _)')
    .transform((value) => value.toUpperCase())
    .optional(),
  /** Glob, as in the invalidate body (no `all` needed to list). */
  pattern: pattern.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_CACHE_ENTRY_LIST_LIMIT).default(DEFAULT_CACHE_ENTRY_LIST_LIMIT),
  /** `next_cursor` of the previous page. */
  cursor: z.string().min(1).max(600).optional(),
});

/** One band of a cache entry. */
const cacheEntryBandSchema = z.object({
  /** Object key in the global bucket. */
  key: z.string(),
  /** Bytes. */
  size: z.number().int(),
  /** SHA3-256 (hex) verified on download. */
  sha3_256: z.string(),
  etag: z.string(),
  /** Path of the file in the SAFE product. */
  safe_path: z.string(),
  /** When the band was registered (ISO 8601). */
  registered_at: z.string(),
  /** The job that downloaded it. */
  job_id: z.string().optional(),
});

/** A `global_scene_cache` row as the admin sees it: the `/v1/cache/scenes` item with band details. */
export const cacheEntrySchema = cachedSceneSchema.extend({
  /** Band id → its object and size. */
  bands: z.record(z.string(), cacheEntryBandSchema),
  mission: z.string(),
  storage_bucket: z.string(),
  /** Key prefix of the scene's objects. */
  storage_path: z.string(),
  cdse_product_id: z.string().nullable(),
  cloud_coverage: z.number().nullable(),
  /** Last change of the cached content or validity (an invalid row's invalidation time). */
  updated_at: z.iso.datetime(),
});

/** `GET /v1/admin/cache/entries` reply. */
export const cacheEntryPageSchema = z.object({
  items: z.array(cacheEntrySchema),
  /** Pass as `cursor` for the next page; `null` on the last page. */
  next_cursor: z.string().nullable(),
});
export type CacheEntryPageView = z.infer<typeof cacheEntryPageSchema>;
