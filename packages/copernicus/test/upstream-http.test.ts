import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UpstreamError } from '@scenecache/core';
import { describeErrorBody, errorForStatus, linkedController } from '../src/upstream-http.js';
import { parseContentRange } from '../src/range-resume.js';
import { parseTokenResponse } from '../src/keycloak-grant.js';

const fixtureText = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../fixtures/cdse/${name}`, import.meta.url)), 'utf8');

describe('describeErrorBody', () => {
  it('reads the real zipper 429 body (code: message)', () => {
    const body = fixtureText('zipper_429_max_session_exceeded.txt').split('\n').find((l) => l.startsWith('{'))!;
    expect(describeErrorBody(body)).toBe('DAT-ZIP-100: Max session number exceeded');
  });

  it('reads the catalogue detail field (string, object, list)', () => {
    expect(describeErrorBody('{"detail":"Invalid filter"}')).toBe('Invalid filter');
    expect(describeErrorBody('{"detail":{"message":"Product not found","request_id":"x"}}')).toBe('Product not found');
    expect(describeErrorBody('{"detail":[{"loc":["query","$filter"],"msg":"bad","type":"value_error"}]}')).toBe('bad');
  });

  it('reads Keycloak errors', () => {
    expect(describeErrorBody('{"error":"invalid_grant","error_description":"Invalid user credentials"}')).toBe('invalid_grant: Invalid user credentials');
  });

  it('falls back to trimmed text', () => {
    expect(describeErrorBody('<html>\n  <body>Bad gateway</body></html>')).toBe('<html> <body>Bad gateway</body></html>');
    expect(describeErrorBody('x'.repeat(400))).toHaveLength(301);
    expect(describeErrorBody('')).toBe('');
  });
});

describe('errorForStatus', () => {
  it.each([
    [404, 'product_not_found', false],
    [401, 'upstream_auth', false],
    [403, 'upstream_auth', false],
    [429, 'upstream_rate_limited', true],
    [500, 'upstream_unavailable', true],
    [503, 'upstream_unavailable', true],
    [408, 'upstream_unavailable', true],
    [400, 'upstream_unavailable', false],
  ])('HTTP %d → %s (retryable %s)', (status, code, retryable) => {
    const err = errorForStatus(status, 'lookup of X', 'detail text', 1_500);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ code, retryable, status, retryAfterMs: 1_500 });
    expect(err.message).toBe(`CDSE lookup of X failed: HTTP ${status} detail text`);
  });
});

describe('parseContentRange', () => {
  it.each([
    ['bytes 100-199/200', { start: 100, end: 199, total: 200 }],
    ['bytes 0-0/*', { start: 0, end: 0, total: undefined }],
    ['BYTES 5-9/10', { start: 5, end: 9, total: 10 }],
  ])('%j', (h, r) => expect(parseContentRange(h)).toEqual(r));

  it.each([null, '', 'bytes */200', 'bytes 9-5/10', 'items 0-1/2'])('%j → undefined', (h) => expect(parseContentRange(h)).toBeUndefined());
});

describe('parseTokenResponse', () => {
  it('reads the real Keycloak password-grant answer (600 s / 3600 s)', () => {
    const { body } = JSON.parse(fixtureText('cdse_keycloak_token_response_password_grant.json')) as { body: unknown };
    const t = parseTokenResponse(JSON.stringify(body), 1_000_000);
    expect(t.expires_at).toBe(1_000_000 + 600_000);
    expect(t.refresh_expires_at).toBe(1_000_000 + 3_600_000);
    expect(t.access_token).toContain('redacted JWT');
    expect(t.refresh_token).toContain('redacted JWT');
  });

  it('the fixture claims agree: exp − iat is 600 s and 3600 s', () => {
    const claims = JSON.parse(fixtureText('cdse_keycloak_token_jwt_claims.json')) as Record<string, { jwt_payload: { exp: number; iat: number; azp: string } }>;
    expect(claims.access_token!.jwt_payload.exp - claims.access_token!.jwt_payload.iat).toBe(600);
    expect(claims.refresh_token!.jwt_payload.exp - claims.refresh_token!.jwt_payload.iat).toBe(3600);
    expect(claims.access_token!.jwt_payload.azp).toBe('cdse-public');
  });

  it('rejects a non-token body as upstream_unavailable (retryable)', () => {
    expect(() => parseTokenResponse('<html>', 0)).toThrow(expect.objectContaining({ code: 'upstream_unavailable', retryable: true }) as Error);
    expect(() => parseTokenResponse('{"access_token":"a","expires_in":0}', 0)).toThrow(UpstreamError);
  });

  it('a token without refresh token stores refresh_expires_at 0', () => {
    expect(parseTokenResponse('{"access_token":"a","expires_in":60}', 0)).toEqual({ access_token: 'a', expires_at: 60_000, refresh_token: undefined, refresh_expires_at: 0 });
  });
});

describe('linkedController', () => {
  it('follows the parent and unhooks on dispose', () => {
    const parent = new AbortController();
    const a = linkedController(parent.signal);
    const b = linkedController(parent.signal);
    b.dispose();
    parent.abort(new Error('x'));
    expect(a.signal.aborted).toBe(true);
    expect(b.signal.aborted).toBe(false);
  });
});
