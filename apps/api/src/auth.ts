/**
 * Bearer API keys for the `/v1` routes (`/healthz`, `/readyz`, `/metrics` stay open).
 *
 * A request carries `Authorization: Bearer <key>`. The key is either `ADMIN_API_KEY` (an admin key,
 * compared in constant time, no database lookup) or a key of the `api_keys` table (looked up by its
 * SHA-256; a row with a `tenant_id` is a tenant key, one without is an admin key).
 *
 * `AUTH_MODE` decides, once, at start (settings.ts): `keys` (the default) enforces a key on every
 * `/v1` request — with no `ADMIN_API_KEY` and no key in `api_keys` every request is 401, never
 * open; `open` (demo, local development) lets every request through as {@link OPEN_PRINCIPAL} and
 * ignores an `Authorization` header. Nothing at run time (a key count, a revocation) changes the
 * mode, and a request that never passed the auth hook has no principal and may do nothing.
 *
 * What a principal may do (checked by the routes through the helpers below):
 * - admin / open: everything;
 * - tenant key: enqueue only for its tenant (else 403 `forbidden`, batches all or nothing); read only
 *   its tenant's jobs (another tenant's job id is 404 `not_found`, so ids do not leak); lists and
 *   stats are forced to its tenant (an explicit other `tenant_id` filter is 403 `forbidden`);
 *   admin-only routes are 403 `forbidden`.
 *
 * Failures: 401 `unauthorized` with `WWW-Authenticate: Bearer` (missing, malformed, unknown or
 * revoked key); 503 `service_unavailable` when Postgres cannot answer the key lookup.
 *
 * The admin web UI (bull-board at `/admin/queues`) uses {@link Authenticator.adminUiHook}: the same
 * keys, sent as Bearer or as HTTP Basic credentials (a browser's login prompt: any user name, the
 * key as password); a tenant key is 403 there, and a 401 challenges with `Basic` so browsers prompt.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { ScenecacheError, type Logger } from '@scenecache/core';
import { API_KEY_TOUCH_INTERVAL_MS, findActiveKeyByHash, hashApiKey, touchApiKey, type DB } from '@scenecache/db';
import { callDependency } from './dependency-call.js';
import { toErrorReply } from './error-handler.js';

/** Who is calling. */
export type Principal =
  /** `ADMIN_API_KEY` (`keyId: null`) or an admin row of `api_keys`. */
  | { readonly kind: 'admin'; readonly keyId: string | null }
  /** A tenant key: sees and enqueues only `tenantId`. */
  | { readonly kind: 'tenant'; readonly keyId: string; readonly tenantId: string }
  /** `AUTH_MODE=open`: may do everything. */
  | { readonly kind: 'open' };

/** The principal of every request under `AUTH_MODE=open`. */
export const OPEN_PRINCIPAL: Principal = Object.freeze({ kind: 'open' });

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on `/v1` routes; `null` on routes without auth (health, metrics). */
    principal: Principal | null;
  }
}

/** Options of {@link Authenticator}. */
export interface AuthOptions {
  /** `AUTH_MODE`: `keys` enforces a key on every request, `open` checks none. */
  readonly mode: 'keys' | 'open';
  /** `ADMIN_API_KEY`, if set. */
  readonly adminApiKey: string | undefined;
  readonly db: Kysely<DB>;
  /** Deadline of a key lookup (ms). */
  readonly postgresMs: number;
  readonly logger: Logger;
}

/** The `WWW-Authenticate` challenge of a 401. */
export const BEARER_CHALLENGE = 'Bearer realm="scenecache"';

const BEARER_RE = /^Bearer[ \t]+([!-~]+)[ \t]*$/i;

/** 401 `unauthorized`. */
function unauthorized(message: string): ScenecacheError {
  return new ScenecacheError('unauthorized', message, { httpStatus: 401 });
}

/** 403 `forbidden`. */
export function forbidden(message: string): ScenecacheError {
  return new ScenecacheError('forbidden', message, { httpStatus: 403 });
}

/** SHA-256 digest, so secrets of any length compare in constant time. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Resolves the principal of each `/v1` request; one per app. */
export class Authenticator {
  private readonly adminDigest: Buffer | undefined;

  constructor(private readonly options: AuthOptions) {
    this.adminDigest = options.adminApiKey === undefined ? undefined : digest(options.adminApiKey);
  }

  /** Whether requests need a key (`AUTH_MODE=keys`). */
  get enforced(): boolean {
    return this.options.mode === 'keys';
  }

  /**
   * The principal of a request.
   *
   * @throws ScenecacheError `unauthorized` (401) for a missing, malformed, unknown or revoked key
   *   under `AUTH_MODE=keys`; `service_unavailable` (503) when Postgres cannot answer.
   */
  async authenticate(request: FastifyRequest): Promise<Principal> {
    if (!this.enforced) return OPEN_PRINCIPAL;
    const header = request.headers.authorization;
    if (header === undefined || header === '') throw unauthorized('missing Authorization: Bearer <API key>');
    const match = BEARER_RE.exec(header);
    if (!match) throw unauthorized('the Authorization header must be "Bearer <API key>"');
    return this.principalForKey(match[1]!, request);
  }

  /**
   * The principal of an API key (the secret itself): `ADMIN_API_KEY`, or a row of `api_keys`.
   *
   * @throws ScenecacheError `unauthorized` (401) for an unknown or revoked key;
   *   `service_unavailable` (503) when Postgres cannot answer.
   */
  private async principalForKey(secret: string, request: FastifyRequest): Promise<Principal> {
    if (this.adminDigest !== undefined && timingSafeEqual(digest(secret), this.adminDigest)) {
      return { kind: 'admin', keyId: null };
    }
    const { db, postgresMs } = this.options;
    const row = await callDependency('Postgres', postgresMs, () => findActiveKeyByHash(db, hashApiKey(secret)));
    if (!row) throw unauthorized('unknown or revoked API key');
    if (row.last_used_at === null || Date.now() - row.last_used_at.getTime() >= API_KEY_TOUCH_INTERVAL_MS) {
      // Not awaited: bookkeeping must not slow or fail the request. touchApiKey is itself rate-limited.
      void touchApiKey(db, row.id).catch((err: unknown) => request.log.debug({ err, keyId: row.id }, 'could not record the API key use'));
    }
    return row.tenant_id === null ? { kind: 'admin', keyId: row.id } : { kind: 'tenant', keyId: row.id, tenantId: row.tenant_id };
  }

  /** The `onRequest` hook of the `/v1` scope: sets `request.principal` or fails the request. */
  readonly hook = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      request.principal = await this.authenticate(request);
    } catch (err) {
      if (err instanceof ScenecacheError && err.code === 'unauthorized') void reply.header('www-authenticate', BEARER_CHALLENGE);
      throw err;
    }
    if (request.principal.kind !== 'open') request.log = request.log.child({ keyId: request.principal.keyId ?? 'ADMIN_API_KEY' });
  };

  /**
   * The principal of a request to an admin web UI (bull-board at `/admin/queues`), which a browser
   * navigates to and so cannot send a Bearer header: the key comes as `Authorization: Bearer <key>`
   * or as HTTP Basic credentials (RFC 7617: any user name, the key as password; see
   * {@link adminUiCredential}). Browsers resend Basic credentials for every URL under the page.
   *
   * @throws ScenecacheError `unauthorized` (401) for missing, malformed, unknown or revoked
   *   credentials under `AUTH_MODE=keys`; `forbidden` (403) for a tenant key;
   *   `service_unavailable` (503) when Postgres cannot answer.
   */
  async authenticateAdminUi(request: FastifyRequest): Promise<Principal> {
    if (!this.enforced) return OPEN_PRINCIPAL;
    const header = request.headers.authorization;
    if (header === undefined || header === '') throw unauthorized('log in with an admin API key: any user name, the key as password (or send Authorization: Bearer <admin key>)');
    const secret = adminUiCredential(header);
    if (secret === undefined) throw unauthorized('the Authorization header must be "Basic base64(<any user>:<admin key>)" or "Bearer <admin key>"');
    const principal = await this.principalForKey(secret, request);
    if (principal.kind === 'tenant') throw forbidden('the queue UI needs an admin key, not a tenant key');
    return principal;
  }

  /**
   * The `onRequest` hook of the admin web UI routes: sets `request.principal` (see
   * {@link authenticateAdminUi}) or answers the request itself — 401 with {@link BASIC_CHALLENGE}
   * (browsers then prompt for credentials), 403, or 503 with `Retry-After` — with the API's JSON error
   * body. It replies rather than throws because the UI's routes live in a plugin with its own
   * error handler.
   */
  readonly adminUiHook = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    try {
      request.principal = await this.authenticateAdminUi(request);
    } catch (err) {
      const { status, body } = toErrorReply(err);
      if (status === 401) void reply.header('www-authenticate', BASIC_CHALLENGE);
      if (status === 503) void reply.header('retry-after', '5');
      if (status >= 500) request.log.warn({ status, error: body.error }, 'admin UI request failed');
      else request.log.info({ status, error: body.error }, 'admin UI request rejected');
      await reply.code(status).send(body);
      return;
    }
    if (request.principal.kind !== 'open') request.log = request.log.child({ keyId: request.principal.keyId ?? 'ADMIN_API_KEY' });
  };
}

/** The `WWW-Authenticate` challenge of an admin UI 401: browsers answer it with a login prompt. */
export const BASIC_CHALLENGE = 'Basic realm="scenecache admin", charset="UTF-8"';

const BASIC_RE = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i;

/**
 * The API key in an admin UI `Authorization` header: `Bearer <key>`, or `Basic base64(user:password)`
 * (UTF-8) whose password is the key — any user name — or, with an empty password, whose user name
 * is the key (`curl -u <key>:`). `undefined` when the header is neither.
 */
export function adminUiCredential(header: string): string | undefined {
  const bearer = BEARER_RE.exec(header);
  if (bearer) return bearer[1];
  const basic = BASIC_RE.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  // RFC 7617: the user id cannot contain a colon; the password may.
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  const secret = password !== '' ? password : user;
  return secret === '' ? undefined : secret;
}

/**
 * The request's principal, as the auth hook set it.
 *
 * @throws ScenecacheError `unauthorized` (401) when the request never passed the auth hook (a
 *   route registered outside the `/v1` scope that asks who is calling): fails closed, never open.
 */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === null || request.principal === undefined) throw unauthorized('this route did not authenticate the request');
  return request.principal;
}

/** @throws ScenecacheError `forbidden` (403) unless the caller is an admin (or `AUTH_MODE=open`); `unauthorized` (401) without a principal. */
export function requireAdmin(request: FastifyRequest): void {
  if (principalOf(request).kind === 'tenant') throw forbidden('this route needs an admin key');
}

/**
 * Check that the caller may act for every tenant in `tenantIds` (enqueue).
 *
 * @throws ScenecacheError `forbidden` (403) when a tenant key names another tenant.
 */
export function requireTenants(request: FastifyRequest, tenantIds: readonly string[]): void {
  const principal = principalOf(request);
  if (principal.kind !== 'tenant') return;
  const other = tenantIds.find((tenantId) => tenantId !== principal.tenantId);
  if (other !== undefined) throw forbidden(`this key may only act for tenant ${principal.tenantId}, not ${JSON.stringify(other)}`);
}

/** Whether the caller may see the tenant's data (reads: answer 404, not 403, when not). */
export function canSeeTenant(request: FastifyRequest, tenantId: string): boolean {
  const principal = principalOf(request);
  return principal.kind !== 'tenant' || principal.tenantId === tenantId;
}

/**
 * The tenant filter of a list or stats read: a tenant key is forced to its tenant; admins get the
 * filter they asked for (`undefined` = every tenant).
 *
 * @throws ScenecacheError `forbidden` (403) when a tenant key asks for another tenant.
 */
export function scopeTenant(request: FastifyRequest, requested: string | undefined): string | undefined {
  const principal = principalOf(request);
  if (principal.kind !== 'tenant') return requested;
  if (requested !== undefined && requested !== principal.tenantId) {
    throw forbidden(`this key may only read tenant ${principal.tenantId}, not ${JSON.stringify(requested)}`);
  }
  return principal.tenantId;
}
