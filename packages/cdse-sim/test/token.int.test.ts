// The token endpoint against the real Keycloak response (fixture cdse_keycloak_token_response_password_grant.json).
import { startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { accessToken, fixture, getFile, jwtPayload, L2A, login, nodeUrl } from './helpers.js';

const real = (JSON.parse(fixture('cdse_keycloak_token_response_password_grant.json')) as { body: Record<string, unknown> }).body;

describe('token endpoint', () => {
  let sim: CdseSim;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.001, logLevel: 'silent', users: [{ username: 'demo@scenecache.dev', password: 'demo' }, { username: '2fa@x.dev', password: 'pw', totp: '123456' }] });
  });
  afterAll(() => sim.close());
  beforeEach(() => sim.resetCounters());

  it('password grant answers the real shape, lifetimes and headers', async () => {
    const res = await login(sim);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(Object.keys(real).sort());
    expect(body).toMatchObject({ expires_in: 600, refresh_expires_in: 3600, token_type: 'Bearer', 'not-before-policy': 0, scope: real.scope });
    const claims = jwtPayload(body.access_token as string);
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
    expect(claims).toMatchObject({ typ: 'Bearer', azp: 'cdse-public', sid: body.session_state });
    expect(jwtPayload(body.refresh_token as string)).toMatchObject({ typ: 'Refresh', sid: body.session_state });
    expect(sim.counters().tokenLogins).toBe(1);
  });

  it('refresh_token grant gives a new working access token in the same session', async () => {
    const first = (await (await login(sim)).json()) as Record<string, string>;
    const res = await fetch(sim.urls.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'cdse-public', refresh_token: first.refresh_token! }),
    });
    expect(res.status).toBe(200);
    const second = (await res.json()) as Record<string, string>;
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.session_state).toBe(first.session_state);
    const file = await getFile(nodeUrl(sim, L2A, 'manifest.safe'), second.access_token!);
    expect(file.status).toBe(200);
    await file.arrayBuffer();
    expect(sim.counters()).toMatchObject({ tokenLogins: 1, tokenRefreshes: 1 });
  });

  it('wrong credentials → 401 invalid_grant "Invalid user credentials"', async () => {
    for (const form of [{ password: 'nope' }, { username: 'who@x.dev' }, { username: '2fa@x.dev', password: 'pw' }, { username: '2fa@x.dev', password: 'pw', totp: '000000' }] as Record<string, string>[]) {
      const res = await login(sim, form);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: 'invalid_grant', error_description: 'Invalid user credentials' });
    }
    expect((await login(sim, { username: '2fa@x.dev', password: 'pw', totp: '123456' })).status).toBe(200);
    expect(sim.counters()).toMatchObject({ tokenLogins: 1, tokenFailures: 4 });
  });

  it('rejects a wrong client, an unknown grant and a bad refresh token', async () => {
    expect(await (await login(sim, { client_id: 'other' })).json()).toEqual({ error: 'invalid_client', error_description: 'Invalid client or Invalid client credentials' });
    const grant = await login(sim, { grant_type: 'client_credentials' });
    expect(grant.status).toBe(400);
    expect(((await grant.json()) as { error: string }).error).toBe('unsupported_grant_type');
    const refresh = await fetch(sim.urls.tokenUrl, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'cdse-public', refresh_token: 'x.y.z' }) });
    expect(refresh.status).toBe(400);
    expect(await refresh.json()).toEqual({ error: 'invalid_grant', error_description: 'Invalid refresh token' });
  });
});

describe('token lifetimes', () => {
  let sim: CdseSim;
  beforeAll(async () => {
    sim = await startCdseSim({ sizeScale: 0.001, logLevel: 'silent', accessTokenTtlSeconds: 1, refreshTokenTtlSeconds: 1 });
  });
  afterAll(() => sim.close());

  it('an expired access token gets 401 on files, an expired refresh token "Token is not active"', async () => {
    const body = (await (await login(sim)).json()) as Record<string, string | number>;
    expect(body.expires_in).toBe(1);
    const url = nodeUrl(sim, L2A, 'manifest.safe');
    const ok = await getFile(url, body.access_token as string);
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    await new Promise((r) => setTimeout(r, 1100));
    const expired = await getFile(url, body.access_token as string);
    expect(expired.status).toBe(401);
    expect(await expired.json()).toHaveProperty('detail');
    const refresh = await fetch(sim.urls.tokenUrl, { method: 'POST', body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'cdse-public', refresh_token: body.refresh_token as string }) });
    expect(refresh.status).toBe(400);
    expect(await refresh.json()).toEqual({ error: 'invalid_grant', error_description: 'Token is not active' });
    expect(sim.counters().unauthorized401).toBe(1);
    await expect(accessToken(sim)).resolves.toEqual(expect.any(String));
  });
});
