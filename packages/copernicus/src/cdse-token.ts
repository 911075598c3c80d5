/**
 * The fleet's one CDSE access token, shared through Redis.
 *
 * CDSE's identity server is Keycloak (realm `CDSE`, public client `cdse-public`): a password grant
 * (`grant_type=password`, plus `totp` for 2FA accounts) returns an access token that lives 600 s and
 * a refresh token that lives 3600 s; `grant_type=refresh_token` renews both (fixtures
 * `cdse_keycloak_token_response_password_grant.json`, `cdse_keycloak_token_jwt_claims.json`;
 * documentation.dataspace.copernicus.eu/APIs/Token.html). **Every password login opens a Keycloak
 * session and an account holds about 100**, so no worker logs in per job: the token lives in one
 * Redis hash, one process refreshes it under a Redis lock (`SET NX PX`) while the others poll and
 * re-read, it is refreshed 60 s ahead of expiry, and a password login happens only when the refresh
 * token is missing, expired or rejected.
 *
 * When CDSE refuses the account itself — Keycloak rejects the password login, or the download
 * service refuses tokens from fresh logins ({@link CdseTokenProvider.rememberRefused}) — the fleet
 * remembers it for {@link ACCOUNT_REFUSED_TTL_SECONDS}: every caller fails at once with
 * `upstream_auth` instead of sending more logins (Keycloak locks an account after repeated failed
 * logins, its brute-force detection). A 401 for one token is never remembered: it is a race.
 *
 * Redis keys (under `keyPrefix`): `<prefix>:cdse:token` (hash: `access_token`, `expires_at`,
 * `refresh_token`, `refresh_expires_at`; times in epoch ms; expires with the refresh token),
 * `<prefix>:cdse:token:lock` (the refresh lock, a random owner id) and `<prefix>:cdse:account-refused`
 * (why, with its TTL).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ScenecacheError, UpstreamError, type Logger } from '@scenecache/core';
import type { AccessTokenSource } from './authorized-request.js';
import { requestKeycloakToken, type CachedCdseToken } from './keycloak-grant.js';
import { abortReason, sleep } from './retry-policy.js';
import type { AgentChooser } from './upstream-http.js';

/** Options of {@link CdseTokenProvider}. */
export interface CdseTokenProviderOptions {
  readonly redis: Redis;
  /** Keycloak token endpoint, e.g. `https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token`. */
  readonly tokenUrl: string;
  /** CDSE account; unset: every token request fails with `upstream_auth`. */
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** A 6-digit TOTP for 2FA accounts, sent with password logins. */
  readonly totp?: string | undefined;
  /** Redis key prefix shared by the fleet (e.g. the queue prefix); keys are `<prefix>:cdse:token[:lock]`. */
  readonly keyPrefix: string;
  readonly logger?: Logger | undefined;
  /** OAuth2 client. @defaultValue `cdse-public` */
  readonly clientId?: string | undefined;
  /** Renew the access token this long before it expires (ms). @defaultValue 60000 */
  readonly refreshMarginMs?: number | undefined;
  /** Lifetime of the refresh lock (ms); a holder that dies frees it after this. @defaultValue 25000 */
  readonly lockTtlMs?: number | undefined;
  /** Longest a caller waits for another process's refresh before failing (ms). @defaultValue 30000 */
  readonly lockWaitMs?: number | undefined;
  /** Poll interval while another process refreshes (ms). @defaultValue 50 */
  readonly lockPollMs?: number | undefined;
  /** Timeout of one token request (ms). @defaultValue 10000 */
  readonly requestTimeoutMs?: number | undefined;
  readonly agent?: AgentChooser | undefined;
  /** Clock (epoch ms), for tests. @defaultValue `Date.now` */
  readonly now?: (() => number) | undefined;
}

/** Counters of one provider (this process only). */
export interface CdseTokenStats {
  /** Password grants sent. */
  logins: number;
  /** Refresh-token grants sent. */
  refreshes: number;
  /** Tokens dropped after a 401 (only those still cached count). */
  invalidations: number;
}

/** Below this much validity left, a token is not handed out even while another process refreshes (ms). */
const MIN_USABLE_MS = 5_000;
/** A refresh token with less than this left is not worth trying (ms). */
const MIN_REFRESH_VALIDITY_MS = 10_000;

/** Delete the lock only if we still own it. */
const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
/** Seconds the fleet remembers that CDSE refused the account (see the module comment). */
export const ACCOUNT_REFUSED_TTL_SECONDS = 60;

/** Expire the cached access token only if it is still the one a 401 rejected; keep the refresh token. */
const INVALIDATE = `if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] and redis.call('HGET', KEYS[1], 'expires_at') ~= '0' then redis.call('HSET', KEYS[1], 'expires_at', '0') return 1 else return 0 end`;
/** Like INVALIDATE, and drop the refresh token too: the renewal is a password login. */
const INVALIDATE_FOR_LOGIN = `if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] and redis.call('HGET', KEYS[1], 'refresh_expires_at') ~= '0' then redis.call('HSET', KEYS[1], 'expires_at', '0', 'refresh_expires_at', '0') return 1 else return 0 end`;

/**
 * Shared CDSE access tokens (see the module comment for the protocol and the Redis layout).
 *
 * `getAccessToken()` is cheap: a process-local copy serves until the refresh margin, concurrent
 * callers in one process share one Redis round trip, and only one process in the fleet talks to
 * Keycloak at a time.
 */
export class CdseTokenProvider implements AccessTokenSource {
  /** Counters of this process's token requests. */
  readonly stats: CdseTokenStats = { logins: 0, refreshes: 0, invalidations: 0 };
  /** The Redis key of the cached token. */
  readonly tokenKey: string;
  /** The Redis key of the fleet's memory that CDSE refused the account. */
  readonly refusedKey: string;
  /** The Redis key of the refresh lock. */
  readonly lockKey: string;

  readonly #o: CdseTokenProviderOptions;
  readonly #now: () => number;
  readonly #marginMs: number;
  #local: CachedCdseToken | undefined;
  #inflight: Promise<string> | undefined;

  constructor(options: CdseTokenProviderOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#marginMs = options.refreshMarginMs ?? 60_000;
    this.tokenKey = `${options.keyPrefix}:cdse:token`;
    this.lockKey = `${options.keyPrefix}:cdse:token:lock`;
    this.refusedKey = `${options.keyPrefix}:cdse:account-refused`;
  }

  /**
   * Remember fleet-wide, for {@link ACCOUNT_REFUSED_TTL_SECONDS}, that CDSE refused the account
   * (`reason`, without secrets): token requests fail at once with `upstream_auth` meanwhile.
   * @throws ScenecacheError `service_unavailable` (retryable) when Redis fails.
   */
  async rememberRefused(reason: string): Promise<void> {
    await this.#redis(() => this.#o.redis.set(this.refusedKey, reason, 'EX', ACCOUNT_REFUSED_TTL_SECONDS));
    this.#o.logger?.error({ key: this.refusedKey, ttlSeconds: ACCOUNT_REFUSED_TTL_SECONDS }, `CDSE refused the account: ${reason}`);
  }

  /**
   * A valid access token with at least the refresh margin left (or, while another process is
   * refreshing, at least 5 s left).
   *
   * @param signal - stops this caller's wait (a refresh already under way continues for the others).
   * @throws UpstreamError `upstream_auth` (not retryable) when credentials are missing or Keycloak
   *   rejects them; `upstream_unavailable` (retryable) when Keycloak is down or another process's
   *   refresh takes longer than `lockWaitMs`; `upstream_rate_limited` (retryable) on 429.
   * @throws ScenecacheError `service_unavailable` (retryable) when Redis fails.
   */
  async getAccessToken(signal?: AbortSignal): Promise<string> {
    const local = this.#local;
    if (local && this.#isFresh(local)) return local.access_token;
    this.#inflight ??= this.#obtain().finally(() => {
      this.#inflight = undefined;
    });
    return signal ? raceAbort(this.#inflight, signal) : this.#inflight;
  }

  /**
   * Drop `staleToken` after the server answered 401 to it. Only the cached token equal to
   * `staleToken` is expired (atomically, in Redis), so N workers that saw the same 401 cause one
   * renewal. The refresh token is kept, so the renewal is a refresh — unless `login` is set (a
   * refreshed token was refused too): then it is dropped as well and the renewal is a password login.
   *
   * @throws ScenecacheError `service_unavailable` (retryable) when Redis fails.
   */
  async invalidate(staleToken: string, options: { login?: boolean } = {}): Promise<void> {
    if (this.#local?.access_token === staleToken) this.#local = undefined;
    const script = options.login ? INVALIDATE_FOR_LOGIN : INVALIDATE;
    const changed = await this.#redis(() => this.#o.redis.eval(script, 1, this.tokenKey, staleToken));
    if (changed === 1) {
      this.stats.invalidations++;
      this.#o.logger?.info({ key: this.tokenKey }, 'CDSE access token rejected (401): expired it for the fleet');
    }
  }

  /** The token cached in Redis, if any (for diagnostics and tests). */
  async peek(): Promise<CachedCdseToken | undefined> {
    return this.#read();
  }

  async #obtain(): Promise<string> {
    const deadline = this.#now() + (this.#o.lockWaitMs ?? 30_000);
    for (;;) {
      const cached = await this.#read();
      if (cached && this.#isFresh(cached)) return this.#remember(cached);
      const refused = await this.#redis(() => this.#o.redis.get(this.refusedKey));
      if (refused !== null) {
        throw new UpstreamError('upstream_auth', `${refused} (remembered for up to ${ACCOUNT_REFUSED_TTL_SECONDS} s; no login sent)`, { status: 401, retryable: false });
      }
      const owner = randomUUID();
      const locked = await this.#redis(() => this.#o.redis.set(this.lockKey, owner, 'PX', this.#o.lockTtlMs ?? 25_000, 'NX'));
      if (locked === 'OK') {
        try {
          // Double-check under the lock: another process may have refreshed since our read.
          const again = await this.#read();
          if (again && this.#isFresh(again)) return this.#remember(again);
          const token = await this.#renew(again);
          await this.#write(token);
          return this.#remember(token);
        } finally {
          await this.#redis(() => this.#o.redis.eval(RELEASE_LOCK, 1, this.lockKey, owner)).catch((err: unknown) => {
            this.#o.logger?.warn({ err }, 'could not release the CDSE token lock (it expires by itself)');
          });
        }
      }
      // Someone else is refreshing. A token that is merely inside the margin still works meanwhile.
      if (cached && cached.expires_at - MIN_USABLE_MS > this.#now()) return cached.access_token;
      if (this.#now() > deadline) {
        throw new UpstreamError('upstream_unavailable', `timed out waiting for another process to refresh the CDSE token (lock ${this.lockKey})`, {
          retryable: true,
          httpStatus: 503,
        });
      }
      await sleep(this.#o.lockPollMs ?? 50);
    }
  }

  /** Refresh when the refresh token is still good; a password login otherwise or when refused. */
  async #renew(cached: CachedCdseToken | undefined): Promise<CachedCdseToken> {
    if (cached?.refresh_token && cached.refresh_expires_at - MIN_REFRESH_VALIDITY_MS > this.#now()) {
      try {
        this.stats.refreshes++;
        const token = await this.#request({ grant_type: 'refresh_token', refresh_token: cached.refresh_token }, 'refresh');
        this.#o.logger?.info({ expiresAt: new Date(token.expires_at).toISOString() }, 'CDSE access token refreshed');
        return token;
      } catch (err) {
        // A refused refresh token (session ended, revoked) is what the password is for.
        if (!(err instanceof UpstreamError && err.code === 'upstream_auth')) throw err;
        this.#o.logger?.warn({ err: err.message }, 'CDSE refresh token refused; logging in with the password');
      }
    }
    const { username, password, totp } = this.#o;
    if (!username || !password) {
      throw new UpstreamError('upstream_auth', 'CDSE credentials are not configured (set CDSE_USERNAME and CDSE_PASSWORD)', { retryable: false });
    }
    this.stats.logins++;
    const token = await this.#request({ grant_type: 'password', username, password, ...(totp ? { totp } : {}) }, 'login').catch(async (err: unknown) => {
      if (err instanceof UpstreamError && err.code === 'upstream_auth') await this.rememberRefused(err.message);
      throw err;
    });
    this.#o.logger?.info({ username, expiresAt: new Date(token.expires_at).toISOString() }, 'CDSE password login (new Keycloak session)');
    return token;
  }

  async #request(form: Record<string, string>, kind: 'login' | 'refresh'): Promise<CachedCdseToken> {
    return requestKeycloakToken({
      tokenUrl: this.#o.tokenUrl,
      clientId: this.#o.clientId ?? 'cdse-public',
      form,
      what: kind === 'login' ? `login as ${this.#o.username ?? '?'}` : 'token refresh',
      timeoutMs: this.#o.requestTimeoutMs ?? 10_000,
      agent: this.#o.agent,
      now: this.#now,
    });
  }

  async #read(): Promise<CachedCdseToken | undefined> {
    const h = await this.#redis(() => this.#o.redis.hgetall(this.tokenKey));
    const expiresAt = Number(h.expires_at);
    if (!h.access_token || !Number.isFinite(expiresAt)) return undefined;
    const refreshExpiresAt = Number(h.refresh_expires_at);
    return {
      access_token: h.access_token,
      expires_at: expiresAt,
      refresh_token: h.refresh_token || undefined,
      refresh_expires_at: Number.isFinite(refreshExpiresAt) ? refreshExpiresAt : 0,
    };
  }

  async #write(token: CachedCdseToken): Promise<void> {
    const ttlMs = Math.max(token.expires_at, token.refresh_expires_at) - this.#now();
    if (ttlMs <= 0) return;
    await this.#redis(() =>
      this.#o.redis
        .multi()
        .del(this.tokenKey)
        .hset(this.tokenKey, {
          access_token: token.access_token,
          expires_at: String(token.expires_at),
          refresh_token: token.refresh_token ?? '',
          refresh_expires_at: String(token.refresh_expires_at),
        })
        .pexpire(this.tokenKey, ttlMs)
        .exec(),
    );
  }

  #isFresh(token: CachedCdseToken): boolean {
    return token.expires_at - this.#marginMs > this.#now();
  }

  #remember(token: CachedCdseToken): string {
    this.#local = token;
    return token.access_token;
  }

  async #redis<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw new ScenecacheError('service_unavailable', `Redis failed while handling the CDSE token: ${err instanceof Error ? err.message : String(err)}`, {
        retryable: true,
        httpStatus: 503,
        cause: err,
      });
    }
  }
}

/** `promise`, or the signal's reason as soon as `signal` aborts (the promise itself keeps running). */
async function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw abortReason(signal);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
