/**
 * The demo's environment: whatever is not configured is started here — cdse-sim (when no CDSE
 * credentials are given), a fresh demo database (when DATABASE_URL is unset), the embedded S3
 * (served by the API process when S3_ENDPOINT is unset) — then the API and the worker processes
 * are spawned with the resulting settings. Children log to `.data/demo/logs/*.log`.
 */
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { createDatabase, dropDatabase, migrateToLatest, quoteIdentifier, withMaintenanceClient } from '@scenecache/db';
import { UsageError } from '@scenecache/core';
import { freePort, killProcessGroup, spawnProcessGroup } from '@scenecache/testing';

/** The repository root (apps/demo/dist → ../../..). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** The database the demo uses when DATABASE_URL is unset; recreated on every run. */
export const DEMO_DATABASE_URL = 'postgres://root@127.0.0.1:5432/scenecache_demo';

/** The comment that marks a database as the demo's own (`COMMENT ON DATABASE`): only such a database is ever dropped. */
export const DEMO_DATABASE_MARK = 'scenecache demo database: npm run demo drops and recreates it on every run';

/**
 * A fresh demo database at `url`: an existing one is dropped only when it carries
 * {@link DEMO_DATABASE_MARK} (the demo made it); the new one is created and marked.
 *
 * @throws UsageError when a database of that name exists without the mark (someone else's data:
 *   the demo refuses to touch it).
 */
export async function recreateDemoDatabase(url: string): Promise<void> {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  const existing = await withMaintenanceClient(url, async (client) => {
    const { rows } = await client.query<{ mark: string | null }>('SELECT shobj_description(oid, $2) AS mark FROM pg_database WHERE datname = $1', [name, 'pg_database']);
    return rows[0];
  });
  if (existing !== undefined) {
    if (existing.mark !== DEMO_DATABASE_MARK) {
      throw new UsageError(`database ${name} on ${new URL(url).host} exists and was not made by the demo: it is left alone. Drop it yourself, or set DATABASE_URL to the database the demo should use`);
    }
    await dropDatabase(url);
  }
  await createDatabase(url);
  await withMaintenanceClient(url, (client) => client.query(`COMMENT ON DATABASE ${quoteIdentifier(name)} IS '${DEMO_DATABASE_MARK}'`));
}

/** What {@link startDemoEnvironment} started. */
export interface DemoEnvironment {
  /** Environment of the child processes (settings). */
  env: Record<string, string>;
  apiUrl: string;
  /** Present when the upstream is the simulator. */
  sim: CdseSim | undefined;
  /**
   * The key the demo's requests carry (`SCENECACHE_API_KEY`, else `ADMIN_API_KEY`); `undefined`
   * when its API runs `AUTH_MODE=open`.
   */
  apiKey: string | undefined;
  /** Whether the cache started empty (fresh database). */
  freshCache: boolean;
  logDir: string;
  stop(): Promise<void>;
}

/** Options of {@link startDemoEnvironment}. */
export interface DemoEnvironmentOptions {
  workers: number;
  /** Size multiplier of the simulator's files (1 = real sizes). */
  sizeScale: number;
  log: (line: string) => void;
}

function spawnLogged(name: string, script: string, env: Record<string, string>, logDir: string): ChildProcess {
  const out = createWriteStream(`${logDir}/${name}.log`);
  const child = spawnProcessGroup(process.execPath, [resolve(REPO_ROOT, script)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  return child;
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with code ${child.exitCode} (see its log)`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => killProcessGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Start what is not configured, migrate, start the API and `workers` worker processes. */
export async function startDemoEnvironment(options: DemoEnvironmentOptions): Promise<DemoEnvironment> {
  const { log } = options;
  const dataDir = resolve(REPO_ROOT, '.data/demo');
  const logDir = `${dataDir}/logs`;
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;

  let sim: CdseSim | undefined;
  if (!env.CDSE_USERNAME) {
    sim = await startCdseSim({ sizeScale: options.sizeScale, logLevel: 'warn' });
    Object.assign(env, { CDSE_TOKEN_URL: sim.urls.tokenUrl, CDSE_CATALOGUE_URL: sim.urls.catalogueUrl, CDSE_DOWNLOAD_URL: sim.urls.downloadUrl, CDSE_USERNAME: sim.credentials.username, CDSE_PASSWORD: sim.credentials.password });
    log(`upstream: cdse-sim at ${sim.url} (real layouts${options.sizeScale === 1 ? ', real sizes' : `, sizes × ${options.sizeScale}`})`);
  } else {
    log(`upstream: CDSE at ${env.CDSE_CATALOGUE_URL ?? 'catalogue.dataspace.copernicus.eu'} as ${env.CDSE_USERNAME}`);
  }

  const freshCache = !env.DATABASE_URL;
  if (freshCache) {
    env.DATABASE_URL = DEMO_DATABASE_URL;
    await recreateDemoDatabase(env.DATABASE_URL);
  }
  const { applied } = await migrateToLatest(env.DATABASE_URL!);
  log(`database: ${env.DATABASE_URL!.replace(/\/\/[^@]*@/, '//')} (${freshCache ? 'fresh' : 'existing'}; ${applied.length} migration(s) applied)`);

  if (!env.S3_ENDPOINT) {
    const s3Dir = `${dataDir}/s3`;
    rmSync(s3Dir, { recursive: true, force: true });
    env.EMBEDDED_S3_PORT = String(await freePort());
    env.EMBEDDED_S3_DIR = s3Dir;
    log(`s3: embedded s3rver on 127.0.0.1:${env.EMBEDDED_S3_PORT}, data in ${s3Dir}`);
  }
  // Auth: with a key given, the API enforces keys and the demo sends it; without one, the demo's
  // own API runs open (it listens on 127.0.0.1 only).
  const apiKey = env.SCENECACHE_API_KEY || env.ADMIN_API_KEY || undefined;
  env.AUTH_MODE ||= apiKey === undefined ? 'open' : 'keys';
  if (env.AUTH_MODE === 'keys' && apiKey === undefined) throw new Error('AUTH_MODE=keys needs a key for the demo: set SCENECACHE_API_KEY (a key from npm run keys) or ADMIN_API_KEY');
  log(`auth: ${env.AUTH_MODE === 'open' ? 'AUTH_MODE=open (no key given)' : `AUTH_MODE=keys, requests carry ${env.SCENECACHE_API_KEY ? 'SCENECACHE_API_KEY' : 'ADMIN_API_KEY'}`}`);
  env.QUEUE_PREFIX ??= `scenecache-demo-${Date.now()}`;
  env.LOG_LEVEL ??= 'info';
  env.API_PORT = String(await freePort());
  env.API_HOST = '127.0.0.1';
  env.WORKER_METRICS_PORT = '0';

  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(children.slice(1).map((c) => stopChild(c)));
    if (children[0]) await stopChild(children[0]); // the API last: it may serve the embedded S3
    await sim?.close();
  };
  try {
    const api = spawnLogged('api', 'apps/api/dist/main.js', env, logDir);
    children.push(api);
    const apiUrl = `http://127.0.0.1:${env.API_PORT}`;
    await waitReady(`${apiUrl}/readyz`, api, 30_000);
    if (!env.S3_ENDPOINT) env.S3_ENDPOINT = `http://127.0.0.1:${env.EMBEDDED_S3_PORT}`;
    for (let i = 1; i <= options.workers; i++) children.push(spawnLogged(`worker-${i}`, 'apps/worker/dist/main.js', env, logDir));
    log(`api: ${apiUrl}; ${options.workers} worker processes; logs in ${logDir}`);
    return { env, apiUrl, apiKey, sim, freshCache, logDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
