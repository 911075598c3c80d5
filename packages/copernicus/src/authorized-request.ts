/**
 * One authorized GET against the CDSE download service, with the retries every download-service
 * call needs: a 401 renews the token and retries ({@link TOKENS_REFUSED_BEFORE_AUTH_FAILURE}), a 429 backs off (honouring
 * `Retry-After`), a 5xx or a network error backs off with jitter — each within its budget.
 *
 * Protocol facts: documentation.dataspace.copernicus.eu/APIs/OData.html#product-download (Bearer
 * token on the download host), …/Quotas.html (4 concurrent downloads; the 5th gets 429
 * `DAT-ZIP-100`, fixture `zipper_429_max_session_exceeded.txt`), …/APIs/Token.html (access tokens
 * live 600 s: a 401 mid-run means it expired).
 */
import fetch, { type Response } from 'node-fetch';
import { UpstreamError, type Logger } from '@scenecache/core';
import { backoffDelayMs, parseRetryAfterMs, sleep, abortReason, type RetryOptions } from './retry-policy.js';
import { errorForStatus, isTransientStatus, linkedController, networkError, readErrorDetail, type AgentChooser } from './upstream-http.js';

/** Where access tokens come from; {@link CdseTokenProvider} is the real one. */
export interface AccessTokenSource {
  /** A currently valid access token (a JWT). */
  getAccessToken(signal?: AbortSignal): Promise<string>;
  /**
   * Report that the server rejected `staleToken` (401), so the next call returns a fresh one: a
   * refreshed token, or with `login: true` one from a new password login (not a refresh).
   */
  invalidate(staleToken: string, options?: { login?: boolean }): Promise<void>;
  /** Remember fleet-wide that the account was refused (tokens from fresh logins got 401 too). */
  rememberRefused?(reason: string): Promise<void>;
}

/**
 * Tokens a request may see refused (401) in a row, for a reason other than expiry, before it fails
 * with `upstream_auth` and the account is remembered as refused: the first is renewed by a refresh,
 * the next ones by fresh password logins. A 401 right after a renewal is usually a race (another
 * worker's refresh, a token revoked in flight), not a credentials error; only tokens from fresh
 * logins, refused again, say the account is refused.
 */
export const TOKENS_REFUSED_BEFORE_AUTH_FAILURE = 3;

/**
 * Tokens a request may see rejected as expired (401 `Expired signature!`, the download service's
 * answer to an expired JWT) in a row before it gives up with a retryable `upstream_auth`. Expiry
 * says nothing against the account: it is never remembered fleet-wide.
 */
export const EXPIRED_TOKENS_BEFORE_GIVING_UP = 8;

/** Whether a 401's detail says the token expired (CDSE's download service: `Expired signature!`). */
function saysExpired(detail: string | undefined): boolean {
  return detail !== undefined && /expired/i.test(detail);
}

/** How {@link authorizedGet} reaches the server. */
export interface AuthorizedGetOptions {
  readonly tokens: AccessTokenSource;
  readonly retry: Readonly<RetryOptions>;
  /** Keep-alive agents (see `createKeepAliveAgents`). @defaultValue node's global agent */
  readonly agent?: AgentChooser | undefined;
  /** Extra request headers, e.g. `Range`. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborts the request, its body and any backoff wait. */
  readonly signal?: AbortSignal | undefined;
  /** What is being fetched, for messages and logs, e.g. `download of GRANULE/…/B04.jp2`. */
  readonly what: string;
  readonly logger?: Logger | undefined;
  /** Jitter source in `[0, 1)`. @defaultValue `Math.random` */
  readonly random?: (() => number) | undefined;
  /** Called on every 429 answer, absorbed or not (e.g. to count them in a metric). */
  readonly onRateLimited?: (() => void) | undefined;
}

/** What {@link authorizedGet} went through before it got its answer. */
export interface AuthorizedGetStats {
  /** Requests sent (1 when the first one succeeded). */
  requests: number;
  /** 429 answers absorbed. */
  rateLimited: number;
  /** 401 answers absorbed by renewing the token (a refresh, then fresh logins). */
  tokenRefreshes: number;
}

/**
 * GET `url` with `Authorization: Bearer <token>` and return the first 2xx response (its body
 * unread, still linked to `signal`). The response is never decompressed (`compress: false`), so
 * byte offsets and sizes are the file's own.
 *
 * @throws UpstreamError
 *   - `upstream_auth` (not retryable) on a 403, or on a 401 after {@link TOKENS_REFUSED_BEFORE_AUTH_FAILURE}
 *     tokens were refused in a row (the last ones from fresh password logins); `upstream_auth`
 *     (retryable) after {@link EXPIRED_TOKENS_BEFORE_GIVING_UP} tokens in a row were rejected as expired;
 *   - `upstream_rate_limited` (retryable, `retryAfterMs`) after `retry.rateLimitAttempts` 429s, or
 *     at once when `Retry-After` exceeds `retry.maxDelayMs`;
 *   - `upstream_unavailable` (retryable) after `retry.attempts` 5xx answers or network errors
 *     (no headers within `retry.responseTimeoutMs` counts as one);
 *   - `product_not_found` (not retryable) on a 404; `upstream_unavailable` (not retryable) on
 *     another 4xx.
 * @throws the signal's reason when `signal` aborts.
 */
export async function authorizedGet(url: string, options: AuthorizedGetOptions, stats?: AuthorizedGetStats): Promise<Response> {
  const { tokens, retry, signal, what, logger } = options;
  const random = options.random ?? Math.random;
  let failures = 0;
  let rateLimited = 0;
  let refused = 0;
  let expired = 0;
  for (;;) {
    if (signal?.aborted) throw abortReason(signal);
    const token = await tokens.getAccessToken(signal);
    // A per-request controller: the response timeout aborts this try only; the caller's signal
    // stays linked for as long as the body streams.
    const link = linkedController(signal);
    const timer = setTimeout(() => link.controller.abort(new Error(`no response within ${retry.responseTimeoutMs} ms`)), retry.responseTimeoutMs);
    let response: Response;
    try {
      if (stats) stats.requests++;
      response = await fetch(url, {
        headers: { ...options.headers, Authorization: `Bearer ${token}`, 'Accept-Encoding': 'identity' },
        agent: options.agent,
        signal: link.signal,
        compress: false,
      });
    } catch (err) {
      link.dispose();
      if (signal?.aborted) throw abortReason(signal);
      failures++;
      if (failures >= retry.attempts) throw networkError(`${what} (${failures} tries)`, link.signal.aborted ? link.signal.reason : err);
      const wait = backoffDelayMs(failures - 1, retry, random);
      logger?.warn({ err, attempt: failures, waitMs: wait }, `CDSE ${what}: network error, retrying`);
      await sleep(wait, signal);
      continue;
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) {
      // Unhook from the caller's signal once the body is done (ended, failed or destroyed).
      if (response.body) response.body.once('close', () => link.dispose());
      else link.dispose();
      return response;
    }
    const detail = await readErrorDetail(response);
    link.dispose();
    const status = response.status;
    const retryAfterMs = parseRetryAfterMs(response.headers.get('retry-after'));

    if (status === 401) {
      // The token expired (600 s lifetime), was revoked, or another worker renewed it meanwhile:
      // renew it (a refresh first, then fresh logins) and try again, within a budget.
      if (saysExpired(detail)) expired++;
      else refused++;
      if (refused > TOKENS_REFUSED_BEFORE_AUTH_FAILURE) {
        await tokens.rememberRefused?.(`the download service refused ${refused} tokens in a row, the last from fresh logins (HTTP 401)`);
        throw new UpstreamError('upstream_auth', `CDSE ${what} failed: HTTP 401 for ${refused} tokens in a row, the last from fresh password logins${detail ? ` (${detail})` : ''}`, { status, retryable: false });
      }
      if (expired > EXPIRED_TOKENS_BEFORE_GIVING_UP) {
        throw new UpstreamError('upstream_auth', `CDSE ${what} failed: ${expired} tokens in a row expired before use${detail ? ` (${detail})` : ''}`, { status, retryable: true });
      }
      const login = refused + expired >= 2;
      if (stats) stats.tokenRefreshes++;
      logger?.info({ status, refused, expired, login }, `CDSE ${what}: 401, renewing the access token (${login ? 'fresh login' : 'refresh'})`);
      await tokens.invalidate(token, { login });
      continue;
    }
    refused = 0;
    expired = 0;

    if (status === 429) {
      rateLimited++;
      if (stats) stats.rateLimited++;
      options.onRateLimited?.();
      const step = backoffDelayMs(rateLimited - 1, retry, random);
      if (rateLimited > retry.rateLimitAttempts || (retryAfterMs !== undefined && retryAfterMs > retry.maxDelayMs)) {
        throw errorForStatus(status, `${what} (rate limited ${rateLimited} times)`, detail, retryAfterMs ?? Math.max(step, retry.baseDelayMs));
      }
      const wait = retryAfterMs ?? step;
      logger?.warn({ status, detail, attempt: rateLimited, waitMs: wait, retryAfterMs }, `CDSE ${what}: rate limited, backing off`);
      await sleep(wait, signal);
      continue;
    }

    if (isTransientStatus(status)) {
      failures++;
      if (failures >= retry.attempts) throw errorForStatus(status, `${what} (${failures} tries)`, detail, retryAfterMs);
      const wait = Math.max(retryAfterMs !== undefined && retryAfterMs <= retry.maxDelayMs ? retryAfterMs : 0, backoffDelayMs(failures - 1, retry, random));
      logger?.warn({ status, detail, attempt: failures, waitMs: wait }, `CDSE ${what}: server error, retrying`);
      await sleep(wait, signal);
      continue;
    }

    throw errorForStatus(status, what, detail, retryAfterMs);
  }
}
