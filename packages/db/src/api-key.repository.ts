/**
 * `api_keys`: API Bearer keys, stored as the SHA-256 of the secret (migration 0003).
 *
 * A secret is `sck_` + 32 random bytes in base64url (47 characters); it is returned once by
 * {@link createApiKey} and never stored. A key with `tenant_id = null` is an admin key.
 *
 * Each key also has a completion callback signing secret (`whsec_` + 32 random bytes, base64url;
 * migration 0009): the jobs enqueued with the key POST their callbacks signed with it. It is
 * returned once too, but stored in clear (the workers sign with it), and read only by
 * {@link findCallbackSecret}: {@link ApiKeyRow} never carries it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { CALLBACK_SECRET_PREFIX } from '@scenecache/core';
import type { Queryable } from './database.js';
import type { ApiKeyRow } from './schema.js';

/** The columns of an {@link ApiKeyRow} (every one but `callback_secret`). */
const KEY_COLUMNS = ['id', 'name', 'key_hash', 'prefix', 'tenant_id', 'created_at', 'revoked_at', 'last_used_at'] as const;

/** Every secret starts with this. */
export const API_KEY_SECRET_PREFIX = 'sck_';

/** Characters of the secret kept in `api_keys.prefix` for display (`sck_` + 8). */
export const API_KEY_DISPLAY_PREFIX_LENGTH = 12;

/** `last_used_at` is bumped at most this often per key (ms). */
export const API_KEY_TOUCH_INTERVAL_MS = 60_000;

/** SHA-256 of a secret, lower-case hex: what `api_keys.key_hash` holds. */
export function hashApiKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** A new random secret: `sck_` + 32 random bytes, base64url. */
export function generateApiKeySecret(): string {
  return `${API_KEY_SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** A new random callback signing secret: `whsec_` + 32 random bytes, base64url. */
export function generateCallbackSecret(): string {
  return `${CALLBACK_SECRET_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** Input of {@link createApiKey}. */
export interface NewApiKey {
  /** The tenant the key acts for; `null` for an admin key. Not checked here (the caller validates it). */
  tenantId: string | null;
  /** Free text for people. */
  name?: string | null;
}

/** A created key: its row and the plaintext secrets, which the caller shows once. */
export interface CreatedApiKey {
  row: ApiKeyRow;
  /** `sck_…`: give it to the client now, it cannot be recovered. */
  secret: string;
  /** `whsec_…`: the key's callback signing secret (receivers verify `X-Scenecache-Signature` with it). */
  callbackSecret: string;
}

/** Create a key. @returns the row and the plaintext secrets (shown once). */
export async function createApiKey(db: Queryable, input: NewApiKey): Promise<CreatedApiKey> {
  const secret = generateApiKeySecret();
  const callbackSecret = generateCallbackSecret();
  const row = await db
    .insertInto('api_keys')
    .values({
      name: input.name ?? null,
      key_hash: hashApiKey(secret),
      prefix: secret.slice(0, API_KEY_DISPLAY_PREFIX_LENGTH),
      tenant_id: input.tenantId,
      callback_secret: callbackSecret,
    })
    .returning(KEY_COLUMNS)
    .executeTakeFirstOrThrow();
  return { row, secret, callbackSecret };
}

/** The unrevoked key whose secret hashes to `keyHash` (see {@link hashApiKey}), if any. */
export async function findActiveKeyByHash(db: Queryable, keyHash: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').select(KEY_COLUMNS).where('key_hash', '=', keyHash).where('revoked_at', 'is', null).executeTakeFirst();
}

/**
 * The callback signing secret of key `id` — also of a revoked key: jobs it enqueued before the
 * revocation still sign their callbacks with it. `undefined` when there is no such key or it has
 * no secret (made before migration 0009 and never rotated).
 */
export async function findCallbackSecret(db: Queryable, id: string): Promise<string | undefined> {
  const row = await db.selectFrom('api_keys').select('callback_secret').where('id', '=', id).executeTakeFirst();
  return row?.callback_secret ?? undefined;
}

/** Whether key `id` has a callback signing secret (the API refuses a `callback_url` without one). */
export async function hasCallbackSecret(db: Queryable, id: string): Promise<boolean> {
  const row = await db.selectFrom('api_keys').select('id').where('id', '=', id).where('callback_secret', 'is not', null).executeTakeFirst();
  return row !== undefined;
}

/**
 * Give key `id` a new callback signing secret (callbacks not yet delivered are signed with the
 * new one from their next attempt on).
 *
 * @returns the row and the new secret (shown once), or `undefined` when no unrevoked key has this id.
 */
export async function rotateCallbackSecret(db: Queryable, id: string): Promise<{ row: ApiKeyRow; callbackSecret: string } | undefined> {
  const callbackSecret = generateCallbackSecret();
  const row = await db
    .updateTable('api_keys')
    .set({ callback_secret: callbackSecret })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning(KEY_COLUMNS)
    .executeTakeFirst();
  return row && { row, callbackSecret };
}

/** Whether any unrevoked key exists (the API enforces auth when one does). */
export async function hasActiveApiKeys(db: Queryable): Promise<boolean> {
  const row = await db.selectFrom('api_keys').select('id').where('revoked_at', 'is', null).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** Options of {@link listApiKeys}. */
export interface ListApiKeysQuery {
  /** Include revoked keys. @defaultValue true */
  includeRevoked?: boolean;
}

/** Every key, newest first (rows carry no secret, only its hash and display prefix). */
export async function listApiKeys(db: Queryable, query: ListApiKeysQuery = {}): Promise<ApiKeyRow[]> {
  let q = db.selectFrom('api_keys').select(KEY_COLUMNS);
  if (query.includeRevoked === false) q = q.where('revoked_at', 'is', null);
  return q.orderBy('created_at', 'desc').orderBy('id').execute();
}

/**
 * Revoke a key: it is refused from the next request on.
 *
 * @returns the revoked row, or `undefined` when no unrevoked key has this id.
 */
export async function revokeApiKey(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  return db
    .updateTable('api_keys')
    .set({ revoked_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning(KEY_COLUMNS)
    .executeTakeFirst();
}

/**
 * Record a use of the key: set `last_used_at = now()` unless it was set within the last minute
 * ({@link API_KEY_TOUCH_INTERVAL_MS}), so a busy key costs one write a minute, not one per request.
 *
 * @returns whether the row was updated.
 */
export async function touchApiKey(db: Queryable, id: string): Promise<boolean> {
  const result = await db
    .updateTable('api_keys')
    .set({ last_used_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where((eb) =>
      eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', sql<Date>`now() - make_interval(secs => ${API_KEY_TOUCH_INTERVAL_MS / 1000})`)]),
    )
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}
