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
import { loadSettings, parseCommandLine, runCommand } from '@scenecache/core';
import { screenshotDashboard } from './dashboard-browser.js';

/** The repository root (apps/api/{src,dist}/dashboard → ../../../..). */
const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

const USAGE = `usage: node apps/api/dist/dashboard/dashboard-screenshot.cli.js [--url URL] [--out FILE]
Saves a PNG of the dashboard page at URL (default API_URL, else http://127.0.0.1:API_PORT) to FILE
(default docs/dashboard.png), in headless Chromium; API_KEY is sent when the API enforces keys.`;

async function main(): Promise<void> {
  const { values } = parseCommandLine(process.argv.slice(2), { usage: USAGE, options: { url: { type: 'string' }, out: { type: 'string' } } });
  const baseUrl = (values.url as string | undefined) ?? process.env.API_URL ?? `http://127.0.0.1:${loadSettings().apiPort}`;
  const out = resolve((values.out as string | undefined) ?? resolve(REPO_ROOT, 'docs/dashboard.png'));
  await screenshotDashboard({ baseUrl, out, apiKey: process.env.API_KEY });
  console.log(`wrote ${out} (dashboard of ${baseUrl})`);
}

runCommand('dashboard screenshot', main);
