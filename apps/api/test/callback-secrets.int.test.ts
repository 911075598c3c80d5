/**
 * Issue 16, the callback signing secrets on the API's side:
 *
 * - `npm run keys -- create` prints the key's callback signing secret once (text and `--json`),
 *   stores it for the workers, and `list` never shows it; `rotate-callback-secret <id>` replaces
 *   it (a revoked or unknown key: exit 1; a bad id: exit 2);
 * - the key rows the API reads to authenticate never carry it;
 * - with LOG_LEVEL=debug, enqueueing with callbacks (a tenant key; ADMIN_API_KEY signed by
 *   CALLBACK_SIGNING_SECRET) and cancelling — which queues the deliveries — logs neither secret,
 *   in any encoding (as secret-logs.int.test.ts does for the API keys).
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { findActiveKeyByHash, findCallbackSecret, hashApiKey, listApiKeys } from '@scenecache/db';
import { L2A, startTestApi, type TestApi } from './helpers.js';

const ADMIN_API_KEY = 'test-admin-key-callback-secrets-0123';
const SIGNING_SECRET = 'bootstrap-signing-secret-for-the-log-test-0123456789';
const CLI = resolve(process.cwd(), 'packages/db/dist/keys.cli.js');
const run = promisify(execFile);

/** Every form a secret could take in a log line (as secret-logs.int.test.ts). */
function encodingsOf(secret: string): string[] {
  const forms = [secret, Buffer.from(secret).toString('hex'), encodeURIComponent(secret)];
  for (const pad of ['', 'x', 'xx']) {
    const b64 = Buffer.from(pad + secret).toString('base64');
    forms.push(b64.slice(pad.length === 0 ? 0 : 4, -4));
  }
  return forms;
}

describe('callback signing secrets', () => {
  let api: TestApi;
  const lines: string[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    api = await startTestApi({ env: { ADMIN_API_KEY, CALLBACK_SIGNING_SECRET: SIGNING_SECRET, LOG_LEVEL: 'debug' }, logDestination: sink });
  });
  afterAll(async () => {
    await api.close();
  });

  async function keys(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const env = { PATH: process.env.PATH, DATABASE_URL: api.databaseUrl, LOG_LEVEL: 'silent' };
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout: string; stderr: string };
      return { code: e.code ?? -1, stdout: e.stdout, stderr: e.stderr };
    }
  }

  it('npm run keys: create shows the signing secret once, list never, rotate-callback-secret replaces it', async () => {
    const created = await keys('create', '--tenant', 'acme', '--name', 'hooks');
    expect(created.code).toBe(0);
    const id = /created key for tenant acme ([0-9a-f-]{36})/.exec(created.stdout)![1]!;
    const signing = /^callback signing secret: (whsec_[A-Za-z0-9_-]{43})$/m.exec(created.stdout)?.[1];
    expect(signing).toBeDefined();
    expect(await findCallbackSecret(api.db, id)).toBe(signing);

    const json = await keys('create', '--tenant', 'acme', '--json');
    const parsed = JSON.parse(json.stdout) as { id: string; secret: string; callback_secret: string };
    expect(parsed.callback_secret).toMatch(/^whsec_/);
    expect(await findCallbackSecret(api.db, parsed.id)).toBe(parsed.callback_secret);

    const listed = await keys('list', '--json');
    expect(listed.stdout).not.toContain('whsec_');
    expect((await listApiKeys(api.db))[0]).not.toHaveProperty('callback_secret');
    expect(await findActiveKeyByHash(api.db, hashApiKey(parsed.secret))).not.toHaveProperty('callback_secret');

    const rotated = await keys('rotate-callback-secret', id);
    expect(rotated.code).toBe(0);
    const fresh = /^(whsec_\S+)$/m.exec(rotated.stdout)?.[1];
    expect(fresh).toBeDefined();
    expect(fresh).not.toBe(signing);
    expect(await findCallbackSecret(api.db, id)).toBe(fresh);

    expect((await keys('revoke', id)).code).toBe(0);
    expect(await keys('rotate-callback-secret', id)).toMatchObject({ code: 1, stderr: expect.stringContaining('no active key') as string });
    expect((await keys('rotate-callback-secret', 'not-a-uuid')).code).toBe(2);
  });

  it('enqueueing with callbacks and cancelling logs neither the key\'s signing secret nor CALLBACK_SIGNING_SECRET', async () => {
    const created = await keys('create', '--tenant', 'acme', '--json');
    const key = JSON.parse(created.stdout) as { secret: string; callback_secret: string };
    const from = lines.length;
    for (const apiKey of [key.secret, ADMIN_API_KEY]) {
      const res = await api.request('POST', '/v1/downloads', {
        json: { tenant_id: 'acme', scene_id: L2A, bands: ['B04'], callback_url: 'https://hooks.example.com/cb' },
        headers: { authorization: `Bearer ${apiKey}` },
      });
      expect(res.status).toBe(202);
      const id = res.body.job_id as string;
      expect((await api.request('DELETE', `/v1/downloads/${id}`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 200));
    const logged = lines.slice(from);
    // Real lines: the enqueues, the cancels and the queued deliveries were logged.
    expect(logged.filter((l) => l.includes('completion callback enqueued')).length).toBe(2);
    const forms = [...encodingsOf(key.callback_secret), ...encodingsOf(SIGNING_SECRET)];
    const leaks = logged.flatMap((line) => forms.filter((f) => line.includes(f)).map((f) => ({ form: f.slice(0, 10), line: line.slice(0, 200) })));
    expect(leaks).toEqual([]);
  });
});
