// Shared by the cdse-sim integration tests: real HTTP against a started sim, plain fetch.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CdseSim } from '@scenecache/cdse-sim';

export const L1C = 'S2B_MSIL1C_20241209T162609_N0511_R040_T17UPV_20241209T195414';
export const L2A = 'S2B_MSIL2A_20240324T101649_N0510_R065_T32TNS_20240324T130035';

/** A fixture file from fixtures/cdse. */
export function fixture(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../../../fixtures/cdse/${name}`, import.meta.url)), 'utf8');
}

export function sha3(bytes: Uint8Array): string {
  return createHash('sha3-256').update(bytes).digest('hex');
}

/** Log in with the password grant; the response body. */
export async function login(sim: CdseSim, form: Record<string, string> = {}): Promise<Response> {
  return fetch(sim.urls.tokenUrl, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', client_id: 'cdse-public', ...sim.credentials, ...form }),
  });
}

/** A valid access token. */
export async function accessToken(sim: CdseSim): Promise<string> {
  const res = await login(sim);
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** The catalogue entry of `name` (looked up like a client does), or undefined. */
export async function lookup(sim: CdseSim, name: string): Promise<Record<string, unknown> | undefined> {
  const filter = encodeURIComponent(`Name eq '${name}.SAFE'`);
  const res = await fetch(`${sim.urls.catalogueUrl}/Products?$filter=${filter}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { value: Record<string, unknown>[] }).value[0];
}

/** The download URL of `path` (SAFE-relative) in product `name`, with `suffix` (`/$value` or `/Nodes`). */
export function nodeUrl(sim: CdseSim, name: string, path: string, suffix = '/$value'): string {
  const segments = [`${name}.SAFE`, ...path.split('/').filter(Boolean)];
  return `${sim.urls.downloadUrl}/Products(${sim.productId(name)})${segments.map((s) => `/Nodes(${s})`).join('')}${suffix}`;
}

/** GET a file with a bearer token (and extra headers). */
export function getFile(url: string, token: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(url, { headers: { Authorization: `Bearer ${token}`, ...headers }, ...(signal ? { signal } : {}) });
}

/** The band file of `name` whose path ends with `suffix`. */
export async function bandPath(sim: CdseSim, name: string, suffix: string): Promise<string> {
  const f = (await sim.productFiles(name)).find((x) => x.path.endsWith(suffix));
  if (!f) throw new Error(`no band file ending ${suffix} in ${name}`);
  return f.path;
}

/** Collect a Node stream into one buffer. */
export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Decode a JWT's payload. */
export function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
