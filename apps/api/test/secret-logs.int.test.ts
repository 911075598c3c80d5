/**
 * Issue 13: no secret reaches a log in any form. The API runs with `LOG_LEVEL=debug` and its log
 * captured; a table of requests carrying the admin key and a tenant key — requests Node's HTTP
 * parser rejects (a control character in a header, headers over 16 KB, a bad chunk size,
 * Content-Length with Transfer-Encoding, a malformed request line) and ordinary ones (a wrong key,
 * a right key, a revoked key's neighbours) — is sent over raw sockets. Every log line is then
 * decoded (JSON strings, byte arrays such as a Buffer's `data`) and searched for each key as
 * text, hex, base64 (every alignment) and percent-encoding.
 */
import { Writable } from 'node:stream';
import { createApiKey } from '@scenecache/db';
import { rawRequest, startTestApi, type TestApi } from './helpers.js';

const ADMIN_KEY = 'admin-key-0123456789-SECRET-abcdef';

/** Every form a secret could take in a log line. */
function encodingsOf(secret: string): string[] {
  const forms = [secret, Buffer.from(secret).toString('hex'), encodeURIComponent(secret)];
  // base64 at each of the three alignments a secret can have inside a longer base64 text.
  for (const pad of ['', 'x', 'xx']) {
    const b64 = Buffer.from(pad + secret).toString('base64');
    forms.push(b64.slice(pad.length === 0 ? 0 : 4, -4));
  }
  return forms;
}

/** The texts inside a parsed log line: its strings and its byte arrays decoded. */
function textsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) {
    if (value.length > 0 && value.every((v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 256)) out.push(Buffer.from(value as number[]).toString('latin1'));
    for (const v of value) textsIn(v, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      out.push(k);
      textsIn(v, out);
    }
  }
  return out;
}

describe('no secret reaches the API log', () => {
  let api: TestApi;
  let tenantKey: string;
  const lines: string[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    api = await startTestApi({ env: { ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'debug' }, logDestination: sink });
    tenantKey = (await createApiKey(api.db, { tenantId: 'acme' })).secret;
  });
  afterAll(async () => {
    await api?.close();
  });

  const requests = (key: string): Array<[string, Buffer, RegExp]> => [
    ['a control character in a header value', Buffer.from(`GET /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Note: a\x01b\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 400/],
    ['a control character in the Authorization header', Buffer.from(`GET /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\x7f\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 400/],
    ['headers over 16 KB', Buffer.from(`GET /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nX-Pad: ${'a'.repeat(17_000)}\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 431/],
    ['a bad chunk size', Buffer.from(`POST /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 400/],
    ['Content-Length with Transfer-Encoding', Buffer.from(`POST /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 400/],
    ['a malformed request line', Buffer.from(`GET /v1/downloads HTTP/1.1 extra\r\nHost: x\r\nAuthorization: Bearer ${key}\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 400/],
    ['a well-formed request', Buffer.from(`GET /v1/downloads?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nConnection: close\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 200/],
    ['a bad body with the key', Buffer.from(`POST /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"a":bad}`, 'latin1'), /^HTTP\/1\.1 400/],
    ['a wrong key one character off', Buffer.from(`GET /v1/downloads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}X\r\nConnection: close\r\n\r\n`, 'latin1'), /^HTTP\/1\.1 401/],
  ];

  it.each([
    ['the admin key', () => ADMIN_KEY],
    ['a tenant key', () => tenantKey],
  ])('%s appears in no log line, in any encoding, whatever the request', async (_which, key) => {
    const secret = key();
    const from = lines.length;
    for (const [what, raw, reply] of requests(secret)) {
      const { reply: answer } = await rawRequest(api.baseUrl, raw);
      expect({ what, status: answer.split('\r\n')[0] }).toEqual({ what, status: expect.stringMatching(reply) as unknown });
      // The reply itself carries no credential back either.
      expect(answer).not.toContain(secret);
    }
    // Give pino a moment to flush.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const logged = lines.slice(from);
    // The requests were logged (the test looks at real lines): one per parser rejection at least.
    expect(logged.filter((l) => l.includes('request rejected by the HTTP parser')).length).toBeGreaterThanOrEqual(5);
    const forms = encodingsOf(secret);
    const leaks = logged.flatMap((line) => {
      const texts = [line, ...textsIn(JSON.parse(line))];
      return forms.filter((f) => texts.some((t) => t.includes(f))).map((f) => ({ form: f, line: line.slice(0, 200) }));
    });
    expect(leaks).toEqual([]);
  });
});
