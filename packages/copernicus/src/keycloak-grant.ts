/**
 * One OAuth2 grant against CDSE's Keycloak (realm `CDSE`, public client `cdse-public`):
 * `POST {tokenUrl}` with a form body (`grant_type=password` + `username`, `password`[, `totp`], or
 * `grant_type=refresh_token` + `refresh_token`). Answers: 200 with `access_token`, `expires_in`
 * (600 s), `refresh_token`, `refresh_expires_in` (3600 s) (fixtures
 * `cdse_keycloak_token_response_password_grant.json`, `cdse_keycloak_token_jwt_claims.json`); 401
 * `invalid_grant` "Invalid user credentials"; 400 `invalid_grant` "Token is not active" for a dead
 * refresh token. Source: documentation.dataspace.copernicus.eu/APIs/Token.html.
 */
import fetch from 'node-fetch';
import { UpstreamError } from '@scenecache/core';
import { parseRetryAfterMs } from './retry-policy.js';
import { describeErrorBody, errorForStatus, linkedController, networkError, readBodyText, type AgentChooser } from './upstream-http.js';

/** The token as cached in Redis. Times are epoch milliseconds. */
export interface CachedCdseToken {
  readonly access_token: string;
  /** When the access token expires (epoch ms). */
  readonly expires_at: number;
  /** `undefined` when the server issued none. */
  readonly refresh_token: string | undefined;
  /** When the refresh token expires (epoch ms); 0 when there is none. */
  readonly refresh_expires_at: number;
}

/** One token request. */
export interface KeycloakGrantRequest {
  readonly tokenUrl: string;
  /** @defaultValue `cdse-public` (set by the caller) */
  readonly clientId: string;
  /** The grant's form fields (`grant_type` and its parameters). */
  readonly form: Readonly<Record<string, string>>;
  /** For messages, e.g. `login as user@example.com`; never includes secrets. */
  readonly what: string;
  /** Timeout of the request (ms). */
  readonly timeoutMs: number;
  readonly agent?: AgentChooser | undefined;
  /** Clock (epoch ms). */
  readonly now: () => number;
}

/**
 * Send one grant and return the tokens with absolute expiry times.
 *
 * @throws UpstreamError `upstream_auth` (not retryable) on 400/401 (bad credentials, refused
 *   refresh token); `upstream_rate_limited` on 429; `upstream_unavailable` (retryable) on 5xx,
 *   timeouts, network errors and non-token bodies.
 */
export async function requestKeycloakToken(request: KeycloakGrantRequest): Promise<CachedCdseToken> {
  const { what, timeoutMs } = request;
  const started = request.now();
  const link = linkedController();
  const timer = setTimeout(() => link.controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  let status: number;
  let text: string;
  let retryAfter: string | null;
  try {
    const response = await fetch(request.tokenUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams({ client_id: request.clientId, ...request.form }).toString(),
      agent: request.agent,
      signal: link.signal,
    });
    status = response.status;
    retryAfter = response.headers.get('retry-after');
    text = await readBodyText(response.body, 1024 * 1024);
  } catch (err) {
    throw networkError(what, link.signal.aborted ? link.signal.reason : err);
  } finally {
    clearTimeout(timer);
  }
  if (status === 400 || status === 401) {
    throw new UpstreamError('upstream_auth', `CDSE ${what} refused: HTTP ${status} ${describeErrorBody(text)}`, { status, retryable: false });
  }
  if (status < 200 || status > 299) throw errorForStatus(status, what, describeErrorBody(text), parseRetryAfterMs(retryAfter));
  return parseTokenResponse(text, started, what);
}

/**
 * Validate a Keycloak token answer and turn its lifetimes into absolute times.
 *
 * @param requestedAt - when the request was sent (epoch ms): lifetimes count from there, so clock
 *   time spent in flight only shortens our view of them.
 * @throws UpstreamError `upstream_unavailable` (retryable) when the body is not a token answer.
 */
export function parseTokenResponse(text: string, requestedAt: number, what = 'token request'): CachedCdseToken {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  if (typeof b.access_token !== 'string' || b.access_token === '' || typeof b.expires_in !== 'number' || !(b.expires_in > 0)) {
    throw new UpstreamError('upstream_unavailable', `CDSE ${what}: the answer is not a token response (${text.slice(0, 100)})`, { retryable: true, httpStatus: 503 });
  }
  const expiresAt = requestedAt + b.expires_in * 1000;
  const refreshToken = typeof b.refresh_token === 'string' && b.refresh_token !== '' ? b.refresh_token : undefined;
  // refresh_expires_in 0 means "no expiry" (offline tokens); we do not ask for those, so be
  // conservative and let such a refresh token live as long as the access token.
  const refreshIn = typeof b.refresh_expires_in === 'number' && b.refresh_expires_in > 0 ? b.refresh_expires_in * 1000 : b.expires_in * 1000;
  return {
    access_token: b.access_token,
    expires_at: expiresAt,
    refresh_token: refreshToken,
    refresh_expires_at: refreshToken ? requestedAt + refreshIn : 0,
  };
}
