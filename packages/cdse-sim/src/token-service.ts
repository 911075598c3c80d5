/**
 * The identity server: Keycloak realm `CDSE`, public client `cdse-public`, password and
 * refresh-token grants (documentation.dataspace.copernicus.eu/APIs/Token.html).
 *
 * Response shape and lifetimes from fixtures `cdse_keycloak_token_response_password_grant.json`
 * and `cdse_keycloak_token_jwt_claims.json`: access token 600 s (RS256 JWT, `typ: Bearer`,
 * `azp: cdse-public`), refresh token 3600 s (HS256 JWT, `typ: Refresh`), both naming the session
 * (`sid`, `session_state`). Tokens here are JWT-shaped (base64url header.payload.signature) with
 * the same claims, so clients that decode `exp` work; the sim checks them by lookup, not signature.
 * Error bodies are Keycloak's standard ones (`{error, error_description}`).
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';

/** An account the sim accepts. */
export interface SimUser {
  username: string;
  password: string;
  /** When set, password logins must also send `totp` with this value (2FA accounts). */
  totp?: string;
}

/** A token endpoint answer: HTTP status and JSON body. */
export interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
  /** What happened, for the counters. */
  outcome: 'login' | 'refresh' | 'failure';
}

/** Why a bearer token was refused, or `ok`. */
export type BearerCheck = { ok: true; username: string } | { ok: false; reason: 'missing' | 'invalid' | 'expired' };

interface Grant {
  username: string;
  sessionId: string;
  /** Epoch ms after which the token is refused. */
  expiresAt: number;
}

const SCOPE = 'AUDIENCE_PUBLIC openid email profile ondemand_processing user-context';
const b64url = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Issues and checks tokens. Lifetimes in seconds. */
export class TokenService {
  private readonly access = new Map<string, Grant>();
  private readonly refresh = new Map<string, Grant>();
  private readonly secret = randomBytes(32);

  constructor(
    private readonly users: readonly SimUser[],
    private readonly accessTtlSeconds: number,
    private readonly refreshTtlSeconds: number,
    /** `iss` claim, e.g. `http://127.0.0.1:8089/auth/realms/CDSE`. */
    private readonly issuer: () => string,
  ) {}

  /** Handle a token request's form fields (`grant_type`, `client_id`, `username`, ...). */
  grant(form: URLSearchParams): TokenAnswer {
    const fail = (status: number, error: string, description: string): TokenAnswer => ({
      status,
      body: { error, error_description: description },
      outcome: 'failure',
    });
    const grantType = form.get('grant_type');
    if (!grantType) return fail(400, 'invalid_request', 'Missing form parameter: grant_type');
    if (form.get('client_id') !== 'cdse-public') return fail(401, 'invalid_client', 'Invalid client or Invalid client credentials');
    if (grantType === 'password') {
      const user = this.users.find((u) => u.username === form.get('username'));
      const ok = user !== undefined && user.password === form.get('password') && (user.totp === undefined || user.totp === form.get('totp'));
      if (!ok) return fail(401, 'invalid_grant', 'Invalid user credentials');
      return { status: 200, body: this.issue(user.username, randomUUID()), outcome: 'login' };
    }
    if (grantType === 'refresh_token') {
      const token = form.get('refresh_token') ?? '';
      const g = this.refresh.get(token);
      if (!g) return fail(400, 'invalid_grant', 'Invalid refresh token');
      if (Date.now() >= g.expiresAt) return fail(400, 'invalid_grant', 'Token is not active');
      return { status: 200, body: this.issue(g.username, g.sessionId), outcome: 'refresh' };
    }
    return fail(400, 'unsupported_grant_type', 'Unsupported grant_type');
  }

  /** Check an `Authorization` header value (`Bearer <token>`). */
  check(authorization: string | undefined): BearerCheck {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return { ok: false, reason: 'missing' };
    const g = this.access.get(m[1]!);
    if (!g) return { ok: false, reason: 'invalid' };
    if (Date.now() >= g.expiresAt) return { ok: false, reason: 'expired' };
    return { ok: true, username: g.username };
  }

  /** Make an access token expire now (the `expireToken` fault). */
  expire(authorization: string | undefined): void {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    const g = m ? this.access.get(m[1]!) : undefined;
    if (g) g.expiresAt = 0;
  }

  private issue(username: string, sessionId: string): Record<string, unknown> {
    this.prune();
    const now = Date.now();
    const iat = Math.floor(now / 1000);
    const common = { iss: this.issuer(), sub: username, azp: 'cdse-public', session_state: sessionId, scope: SCOPE, sid: sessionId };
    const accessToken = this.jwt({ alg: 'RS256', typ: 'JWT', kid: 'cdse-sim' }, {
      exp: iat + this.accessTtlSeconds, iat, jti: randomUUID(), ...common,
      aud: ['CLOUDFERRO_PUBLIC', 'account'], typ: 'Bearer', preferred_username: username,
    });
    const refreshToken = this.jwt({ alg: 'HS256', typ: 'JWT', kid: 'cdse-sim-refresh' }, {
      exp: iat + this.refreshTtlSeconds, iat, jti: randomUUID(), ...common, aud: this.issuer(), typ: 'Refresh',
    });
    this.access.set(accessToken, { username, sessionId, expiresAt: now + this.accessTtlSeconds * 1000 });
    this.refresh.set(refreshToken, { username, sessionId, expiresAt: now + this.refreshTtlSeconds * 1000 });
    return {
      access_token: accessToken,
      expires_in: this.accessTtlSeconds,
      refresh_expires_in: this.refreshTtlSeconds,
      refresh_token: refreshToken,
      token_type: 'Bearer',
      'not-before-policy': 0,
      session_state: sessionId,
      scope: SCOPE,
    };
  }

  private jwt(header: object, payload: object): string {
    const body = `${b64url(header)}.${b64url(payload)}`;
    return `${body}.${createHmac('sha256', this.secret).update(body).digest('base64url')}`;
  }

  /** Forget tokens expired for a while, so long runs do not grow the maps without bound. */
  private prune(): void {
    const cutoff = Date.now() - 60_000;
    for (const map of [this.access, this.refresh]) {
      for (const [k, g] of map) if (g.expiresAt < cutoff) map.delete(k);
    }
  }
}
