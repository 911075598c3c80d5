/**
 * CdseTokenProvider against a real tiny Keycloak stand-in (node:http) and real Redis: one login
 * shared by concurrent callers and providers, refresh ahead of expiry, fallback to the password,
 * invalidation after a 401, the refresh lock.
 */
import type { Redis } from 'ioredis';
import { UpstreamError } from '@scenecache/core';
import { CdseTokenProvider, type CdseTokenProviderOptions } from '../src/cdse-token.js';
import { startTestServer, type TestServer } from './helpers/http-server.js';
import { testRedis } from './helpers/redis.js';

interface Keycloak {
  srv: TestServer;
  logins: number;
  refreshes: number;
  /** Refresh tokens the server still accepts. */
  live: Set<string>;
  /** Seconds. */
  ttl: { access: number; refresh: number };
  mode: 'ok' | 'down' | 'slow';
}

async function startKeycloak(): Promise<Keycloak> {
  let n = 0;
  const kc: Keycloak = { srv: undefined as unknown as TestServer, logins: 0, refreshes: 0, live: new Set(), ttl: { access: 600, refresh: 3600 }, mode: 'ok' };
  kc.srv = await startTestServer(async (_req, res, seen) => {
    if (kc.mode === 'down') {
      res.writeHead(503, { 'Content-Type': 'text/html' });
      return void res.end('<html>Service Unavailable</html>');
    }
    if (kc.mode === 'slow') await new Promise((r) => setTimeout(r, 300));
    const form = new URLSearchParams(seen.body);
    const issue = (): void => {
      n++;
      const refresh = `refresh-${n}`;
      kc.live.add(refresh);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify({ access_token: `access-${n}`, expires_in: kc.ttl.access, refresh_expires_in: kc.ttl.refresh, refresh_token: refresh, token_type: 'Bearer', 'not-before-policy': 0, session_state: 's', scope: 'openid' }));
    };
    if (form.get('client_id') !== 'cdse-public') {
      res.writeHead(401);
      return void res.end('{"error":"invalid_client"}');
    }
    if (form.get('grant_type') === 'password') {
      kc.logins++;
      if (form.get('username') !== 'user@example.com' || form.get('password') !== 'secret') {
        res.writeHead(401, { 'Content-Type': 'application/json' });
        return void res.end('{"error":"invalid_grant","error_description":"Invalid user credentials"}');
      }
      return issue();
    }
    if (form.get('grant_type') === 'refresh_token') {
      kc.refreshes++;
      const token = form.get('refresh_token') ?? '';
      if (!kc.live.delete(token)) {
        res.writeHead(400, { 'Content-Type': 'application/json' });
        return void res.end('{"error":"invalid_grant","error_description":"Token is not active"}');
      }
      return issue();
    }
    res.writeHead(400);
    res.end('{"error":"unsupported_grant_type"}');
  });
  return kc;
}

let kc: Keycloak;
let redis: Redis;
let prefix: string;
let cleanup: () => Promise<void>;
let clock: number;

beforeEach(async () => {
  kc = await startKeycloak();
  ({ redis, prefix, cleanup } = testRedis());
  clock = Date.now();
});
afterEach(async () => {
  await kc.srv.close();
  await cleanup();
});

function provider(extra: Partial<CdseTokenProviderOptions> = {}): CdseTokenProvider {
  return new CdseTokenProvider({
    redis,
    tokenUrl: `${kc.srv.url}/auth/realms/CDSE/protocol/openid-connect/token`,
    username: 'user@example.com',
    password: 'secret',
    keyPrefix: prefix,
    now: () => clock,
    lockPollMs: 10,
    ...extra,
  });
}

describe('CdseTokenProvider', () => {
  it('logs in with the password grant and caches the token in Redis with its expiry', async () => {
    const p = provider({ totp: '123456' });
    await expect(p.getAccessToken()).resolves.toBe('access-1');
    const form = new URLSearchParams(kc.srv.requests[0]!.body);
    expect(Object.fromEntries(form)).toEqual({ client_id: 'cdse-public', grant_type: 'password', username: 'user@example.com', password: 'secret', totp: '123456' });
    expect(kc.srv.requests[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(await redis.hgetall(`${prefix}:cdse:token`)).toEqual({
      access_token: 'access-1',
      expires_at: String(clock + 600_000),
      refresh_token: 'refresh-1',
      refresh_expires_at: String(clock + 3_600_000),
    });
    const ttl = await redis.pttl(`${prefix}:cdse:token`);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    expect(await redis.exists(`${prefix}:cdse:token:lock`)).toBe(0);
  });

  it('concurrent callers across 5 providers (processes) share ONE login', async () => {
    kc.mode = 'slow';
    const providers = Array.from({ length: 5 }, () => provider());
    const tokens = await Promise.all(providers.flatMap((p) => Array.from({ length: 10 }, () => p.getAccessToken())));
    expect(new Set(tokens)).toEqual(new Set(['access-1']));
    expect(kc.logins).toBe(1);
    expect(providers.reduce((s, p) => s + p.stats.logins, 0)).toBe(1);
  });

  it('a second provider reads the cached token without logging in', async () => {
    await provider().getAccessToken();
    await expect(provider().getAccessToken()).resolves.toBe('access-1');
    expect(kc.logins).toBe(1);
  });

  it('refreshes with the refresh token ahead of expiry (60 s margin), not with the password', async () => {
    const p = provider();
    await p.getAccessToken();
    clock += 539_000; // 61 s left: still fresh
    await expect(p.getAccessToken()).resolves.toBe('access-1');
    clock += 2_000; // 59 s left: renew
    await expect(p.getAccessToken()).resolves.toBe('access-2');
    expect(kc.logins).toBe(1);
    expect(kc.refreshes).toBe(1);
    expect(new URLSearchParams(kc.srv.requests[1]!.body).get('refresh_token')).toBe('refresh-1');
    expect(new URLSearchParams(kc.srv.requests[1]!.body).get('grant_type')).toBe('refresh_token');
  });

  it('logs in again when the refresh token has expired', async () => {
    const p = provider();
    await p.getAccessToken();
    clock += 3_600_000;
    await expect(p.getAccessToken()).resolves.toBe('access-2');
    expect(kc.logins).toBe(2);
    expect(kc.refreshes).toBe(0);
  });

  it('falls back to the password when the refresh token is refused', async () => {
    const p = provider();
    await p.getAccessToken();
    kc.live.clear(); // session ended server-side
    clock += 590_000;
    await expect(p.getAccessToken()).resolves.toBe('access-2');
    expect(kc.refreshes).toBe(1);
    expect(kc.logins).toBe(2);
  });

  it('invalidate(): N workers reporting the same 401 cause one refresh; a stale report is a no-op', async () => {
    const providers = Array.from({ length: 4 }, () => provider());
    await Promise.all(providers.map((p) => p.getAccessToken()));
    await Promise.all(providers.map((p) => p.invalidate('access-1')));
    const after = await Promise.all(providers.map((p) => p.getAccessToken()));
    expect(new Set(after)).toEqual(new Set(['access-2']));
    expect(kc.refreshes).toBe(1);
    expect(kc.logins).toBe(1);
    // A late 401 for the old token does not throw the new one away.
    await providers[0]!.invalidate('access-1');
    await expect(providers[1]!.getAccessToken()).resolves.toBe('access-2');
    expect(kc.refreshes).toBe(1);
    expect(providers.reduce((s, p) => s + p.stats.invalidations, 0)).toBe(1);
  });

  it('bad credentials are upstream_auth, not retryable', async () => {
    const err = await provider({ password: 'wrong' }).getAccessToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code: 'upstream_auth', retryable: false, status: 401 });
    expect((err as Error).message).toContain('Invalid user credentials');
    expect((err as Error).message).not.toContain('wrong');
    expect(await redis.exists(`${prefix}:cdse:token:lock`)).toBe(0);
    // Remembered fleet-wide: another process fails at once, without a login that could lock the account.
    const logins = kc.srv.requests.length;
    const again = await provider({ password: 'wrong' }).getAccessToken().catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'upstream_auth', retryable: false });
    expect((again as Error).message).toMatch(/Invalid user credentials.*remembered for up to 60 s; no login sent/);
    expect(kc.srv.requests).toHaveLength(logins);
    expect(await redis.ttl(`${prefix}:cdse:account-refused`)).toBeGreaterThan(50);
  });

  it('missing credentials are upstream_auth without a request', async () => {
    await expect(provider({ username: undefined, password: undefined }).getAccessToken()).rejects.toMatchObject({ code: 'upstream_auth', retryable: false });
    expect(kc.srv.requests).toHaveLength(0);
  });

  it('Keycloak down is upstream_unavailable, retryable', async () => {
    kc.mode = 'down';
    await expect(provider().getAccessToken()).rejects.toMatchObject({ code: 'upstream_unavailable', retryable: true, status: 503 });
  });

  it('an unreachable token endpoint is upstream_unavailable, retryable', async () => {
    await kc.srv.close();
    await expect(provider().getAccessToken()).rejects.toMatchObject({ code: 'upstream_unavailable', retryable: true });
    kc.srv = await startTestServer((_q, r) => void r.end()); // for afterEach
  });

  it('waits for another process holding the refresh lock, then uses its token', async () => {
    await redis.set(`${prefix}:cdse:token:lock`, 'someone-else', 'PX', 10_000);
    const p = provider();
    const pending = p.getAccessToken();
    await new Promise((r) => setTimeout(r, 100));
    // The other process writes the token and releases the lock.
    await redis.hset(`${prefix}:cdse:token`, { access_token: 'from-other', expires_at: String(clock + 600_000), refresh_token: 'r', refresh_expires_at: String(clock + 3_600_000) });
    await redis.del(`${prefix}:cdse:token:lock`);
    await expect(pending).resolves.toBe('from-other');
    expect(kc.logins).toBe(0);
  });

  it('while another process refreshes, a token inside the margin but still valid is used', async () => {
    await redis.hset(`${prefix}:cdse:token`, { access_token: 'old-but-valid', expires_at: String(clock + 30_000), refresh_token: 'r', refresh_expires_at: String(clock + 3_000_000) });
    await redis.set(`${prefix}:cdse:token:lock`, 'someone-else', 'PX', 10_000);
    await expect(provider().getAccessToken()).resolves.toBe('old-but-valid');
    expect(kc.srv.requests).toHaveLength(0);
  });

  it('gives up waiting for a stuck lock after lockWaitMs (upstream_unavailable, retryable)', async () => {
    await redis.set(`${prefix}:cdse:token:lock`, 'someone-else', 'PX', 60_000);
    const p = new CdseTokenProvider({ redis, tokenUrl: `${kc.srv.url}/t`, username: 'user@example.com', password: 'secret', keyPrefix: prefix, lockWaitMs: 200, lockPollMs: 20 });
    await expect(p.getAccessToken()).rejects.toMatchObject({ code: 'upstream_unavailable', retryable: true });
  });

  it('a lock whose holder died expires and the next caller logs in', async () => {
    await redis.set(`${prefix}:cdse:token:lock`, 'dead-worker', 'PX', 150);
    const p = new CdseTokenProvider({ redis, tokenUrl: `${kc.srv.url}/t`, username: 'user@example.com', password: 'secret', keyPrefix: prefix, lockPollMs: 20 });
    await expect(p.getAccessToken()).resolves.toBe('access-1');
    expect(kc.logins).toBe(1);
  });

  it('a caller signal stops only that caller', async () => {
    kc.mode = 'slow';
    const p = provider();
    const ac = new AbortController();
    const a = p.getAccessToken(ac.signal);
    const b = p.getAccessToken();
    ac.abort(new Error('job cancelled'));
    await expect(a).rejects.toThrow('job cancelled');
    await expect(b).resolves.toBe('access-1');
  });
});
