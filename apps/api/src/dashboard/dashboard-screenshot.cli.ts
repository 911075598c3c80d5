/**
 * Screenshot of the dashboard of a running API, for the README (`docs/dashboard.png`):
 *
 *   npm run build && node apps/api/dist/dashboard/dashboard-screenshot.cli.js [--url URL] [--out FILE]
 *
 * `--url` (else `API_URL`, else `http://127.0.0.1:<API_PORT>`) is the API's base URL; `--out`
 * defaults to `docs/dashboard.png` in the repository. When the API enforces keys, pass one in
 * `API_KEY` (an admin key shows every panel; an environment variable keeps it out of `ps`). Needs
 * Debian's `chromium` (see dashboard-browser.ts). Exits non-zero when the page does not load all
 * its figures.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadSettings } from '@scenecache/core';
import { screenshotDashboard } from './dashboard-browser.js';

/** The repository root (apps/api/{src,dist}/dashboard → ../../../..). */
const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { url: { type: 'string' }, out: { type: 'string' } } });
  const baseUrl = values.url ?? process.env.API_URL ?? `http://127.0.0.1:${loadSettings().apiPort}`;
  const out = resolve(values.out ?? resolve(REPO_ROOT, 'docs/dashboard.png'));
  await screenshotDashboard({ baseUrl, out, apiKey: process.env.API_KEY });
  console.log(`wrote ${out} (dashboard of ${baseUrl})`);
}

main().catch((err: unknown) => {
  console.error('dashboard screenshot failed:', err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
