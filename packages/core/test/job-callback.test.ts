/**
 * Issue 16, the completion callback's contract (pure): the signature header a receiver verifies
 * (Stripe's `t=,v1=` scheme, checked against a hand-made HMAC), the callback URL rules (https, or
 * http to loopback when allowed; no credentials; bounded length), the CALLBACK_* settings, and the
 * delivery's BullMQ options (bounded attempts, exponential backoff with jitter).
 */
import { createHmac } from 'node:crypto';
import {
  callbackJobOptions,
  checkCallbackUrl,
  loadSettings,
  MAX_CALLBACK_URL_LENGTH,
  ScenecacheError,
  signCallback,
  ValidationError,
  verifyCallbackSignature,
} from '@scenecache/core';

const SECRET = 'whsec_test-secret-0123456789abcdefghijklmnop';
const BODY = '{"job_id":"j1","status":"completed"}';

describe('signCallback / verifyCallbackSignature', () => {
  it('signs "<t>.<body>" with HMAC-SHA256 in hex, as t=<t>,v1=<hex>', () => {
    const header = signCallback(SECRET, 1_790_000_000, BODY);
    const hex = createHmac('sha256', SECRET).update(`1790000000.${BODY}`).digest('hex');
    expect(header).toBe(`t=1790000000,v1=${hex}`);
  });

  it('verifies its own signature within the tolerance, and nothing else', () => {
    const t = 1_790_000_000;
    const header = signCallback(SECRET, t, BODY);
    expect(verifyCallbackSignature(SECRET, BODY, header, { now: t + 10 })).toBe(true);
    // Another secret, another body, a replay past the tolerance, a malformed header.
    expect(verifyCallbackSignature(`${SECRET}x`, BODY, header, { now: t })).toBe(false);
    expect(verifyCallbackSignature(SECRET, `${BODY} `, header, { now: t })).toBe(false);
    expect(verifyCallbackSignature(SECRET, BODY, header, { now: t + 301 })).toBe(false);
    expect(verifyCallbackSignature(SECRET, BODY, header, { now: t + 301, toleranceSeconds: 600 })).toBe(true);
    expect(verifyCallbackSignature(SECRET, BODY, `t=${t}`, { now: t })).toBe(false);
    expect(verifyCallbackSignature(SECRET, BODY, header.replace(/v1=./, 'v1=g'), { now: t })).toBe(false);
    // A timestamp that was changed no longer matches its MAC.
    expect(verifyCallbackSignature(SECRET, BODY, header.replace(`t=${t}`, `t=${t + 1}`), { now: t })).toBe(false);
  });
});

describe('checkCallbackUrl', () => {
  const strict = { allowHttpLoopback: false };
  const dev = { allowHttpLoopback: true };

  function rejection(url: string, options = strict, field?: string): ValidationError {
    try {
      checkCallbackUrl(url, options, field);
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).code).toBe('invalid_callback_url');
      return err as ValidationError;
    }
    throw new Error(`${url} was accepted`);
  }

  it('accepts https URLs (normalized), and http to loopback only when allowed', () => {
    expect(checkCallbackUrl('https://hooks.example.com/scenecache?tenant=acme', strict)).toBe('https://hooks.example.com/scenecache?tenant=acme');
    expect(checkCallbackUrl('HTTPS://Hooks.Example.com:8443', strict)).toBe('https://hooks.example.com:8443/');
    for (const url of ['http://127.0.0.1:8080/cb', 'http://localhost/cb', 'http://[::1]:9000/cb']) {
      expect(checkCallbackUrl(url, dev)).toBe(url);
      expect(rejection(url).message).toContain('must be https://');
    }
  });

  it('refuses other schemes, other http hosts, credentials, fragments, relative and over-long URLs, naming the field', () => {
    expect(rejection('ftp://example.com/x').message).toBe('callback_url: must be https://');
    expect(rejection('http://example.com/cb', dev).message).toMatch(/loopback hosts only/);
    expect(rejection('http://10.0.0.1/cb', dev).message).toMatch(/loopback hosts only/);
    expect(rejection('http://127.0.0.1.nip.io/cb', dev).message).toMatch(/loopback hosts only/);
    expect(rejection('https://user:pass@example.com/cb').message).toMatch(/user name or password/);
    expect(rejection('https://token@example.com/cb').message).toMatch(/user name or password/);
    expect(rejection('https://example.com/cb#frag').message).toMatch(/fragment/);
    expect(rejection('/relative/path').message).toMatch(/absolute URL/);
    expect(rejection(`https://example.com/${'a'.repeat(MAX_CALLBACK_URL_LENGTH)}`).message).toMatch(/at most 2048/);
    const inBatch = rejection('http://example.com', strict, 'jobs[3].callback_url');
    expect(inBatch).toMatchObject({ field: 'jobs[3].callback_url', message: 'jobs[3].callback_url: must be https://' });
  });
});

describe('CALLBACK_* settings and the delivery options', () => {
  it('defaults: https only, 12 attempts from 10 s, 10 s per POST, no bootstrap secret', () => {
    expect(loadSettings({})).toMatchObject({
      callbackAllowHttpLoopback: false,
      callbackMaxAttempts: 12,
      callbackBackoffMs: 10_000,
      callbackTimeoutMs: 10_000,
      callbackConcurrency: 16,
      callbackSigningSecret: undefined,
    });
  });

  it('refuses a short signing secret without echoing it', () => {
    const secret = 'too-short-secret';
    let message = '';
    try {
      loadSettings({ CALLBACK_SIGNING_SECRET: secret });
    } catch (err) {
      expect(err).toBeInstanceOf(ScenecacheError);
      message = (err as Error).message;
    }
    expect(message).toContain('CALLBACK_SIGNING_SECRET: must be at least 32 characters');
    expect(message).not.toContain(secret);
  });

  it('gives BullMQ bounded attempts and exponential backoff with jitter', () => {
    const s = loadSettings({ CALLBACK_MAX_ATTEMPTS: '4', CALLBACK_BACKOFF_MS: '100', CALLBACK_ALLOW_HTTP_LOOPBACK: 'true' });
    expect(s.callbackAllowHttpLoopback).toBe(true);
    expect(callbackJobOptions(s)).toMatchObject({ attempts: 4, backoff: { type: 'exponential', delay: 100, jitter: 0.5 } });
  });
});
