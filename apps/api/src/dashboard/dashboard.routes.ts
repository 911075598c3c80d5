/**
 * The dashboard: a static page at `/` for a person, whose script reads the public `/v1` API like
 * any other client (same origin, the visitor's API key as Bearer). No build step: the files in
 * `apps/api/public/` are served as they are, and Chart.js's UMD build straight from the installed
 * `chart.js` package.
 *
 * Routes (all hidden from the OpenAPI document; they carry no zod schema, so the root app's zod
 * validator and serializer compilers have nothing to compile):
 * - `GET /` → `public/index.html`;
 * - `GET /dashboard/<file>` → every other file of `public/` (routes made at start for the files
 *   found, no wildcard: an unknown path stays the app's JSON 404);
 * - `GET /dashboard/vendor/chart.umd.js` (+ `.map`) → `chart.js/dist/`.
 *
 * Every reply carries a strict Content-Security-Policy (scripts, styles and fetches from this
 * origin only; no inline script; forms cannot submit anywhere, so an API key typed into the key
 * form never lands in a URL) and `Cache-Control: no-cache` (revalidated by ETag, so an upgraded
 * API serves its new page at once).
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginCallback } from 'fastify';

/** URL prefix of the page's files (the page itself is at `/`). */
export const DASHBOARD_PREFIX = '/dashboard';

/** The folder of the page's files: `apps/api/public/` (the same from `src/dashboard/` and `dist/dashboard/`). */
export const DASHBOARD_PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url));

/** Chart.js's files served to the page, from the installed package's `dist/`. */
const CHART_FILES = ['chart.umd.js', 'chart.umd.js.map'] as const;

/**
 * The installed `chart.js` package's `dist/` folder. Its `exports` map hides `dist/chart.umd.js`,
 * so it is found next to the package's CommonJS entry (`dist/chart.cjs`).
 */
function chartJsDistDir(): string {
  return dirname(createRequire(import.meta.url).resolve('chart.js'));
}

/** Content-Security-Policy of every dashboard reply. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The dashboard routes (registered at the root, in a scope of their own). */
export const dashboardRoutes: FastifyPluginCallback = (fastify, _options, done) => {
  const chartDir = chartJsDistDir();
  // Fail at start, not on the first page view, when the page or Chart.js is missing (e.g. an
  // image built without apps/api/public).
  const files = readdirSync(DASHBOARD_PUBLIC_DIR);
  if (!files.includes('index.html')) throw new Error(`dashboard: no index.html in ${DASHBOARD_PUBLIC_DIR}`);
  const chartFiles = readdirSync(chartDir);
  for (const file of CHART_FILES) if (!chartFiles.includes(file)) throw new Error(`dashboard: no ${file} in ${chartDir}`);

  fastify.addHook('onSend', (_request, reply, payload, hookDone) => {
    void reply.header('content-security-policy', DASHBOARD_CSP);
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('referrer-policy', 'no-referrer');
    void reply.header('cache-control', 'no-cache');
    hookDone(null, payload);
  });

  // `@fastify/static` is wrapped in fastify-plugin: its reply decorator stays in this scope.
  void fastify.register(fastifyStatic, {
    root: DASHBOARD_PUBLIC_DIR,
    prefix: `${DASHBOARD_PREFIX}/`,
    // One route per file found now, no `/dashboard/*` catch-all; index.html only at `/`
    // (its relative links resolve from there).
    wildcard: false,
    index: false,
    globIgnore: ['index.html'],
    cacheControl: false,
    schemaHide: true,
  });

  fastify.get('/', { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.html'));

  for (const file of CHART_FILES) {
    fastify.get(`${DASHBOARD_PREFIX}/vendor/${file}`, { schema: { hide: true } }, (_request, reply) => reply.sendFile(file, chartDir));
  }
  done();
};
