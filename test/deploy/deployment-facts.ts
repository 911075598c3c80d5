/**
 * What the deployment files (Dockerfile, docker-compose.yml, k8s/) may refer to, taken from the
 * code itself so a renamed setting or entry point breaks these tests, not a deployment.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTING_NAMES } from '@scenecache/core';
import { CDSE_SIM_ENV_NAMES } from '@scenecache/cdse-sim';

/** The repository root. */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The image's commands: name → compiled entry point (relative to the repo root / image workdir). */
export const ENTRY_POINTS: Readonly<Record<'api' | 'worker' | 'migrate' | 'keys' | 'sim', string>> = Object.freeze({
  api: 'apps/api/dist/main.js',
  worker: 'apps/worker/dist/main.js',
  migrate: 'packages/db/dist/migrate.cli.js',
  keys: 'packages/db/dist/keys.cli.js',
  sim: 'packages/cdse-sim/dist/main.js',
});

/** Environment variables Node itself reads that a deployment may set on any container. */
export const NODE_ENV_NAMES: readonly string[] = Object.freeze(['NODE_ENV', 'NODE_OPTIONS', 'TZ']);

/**
 * Environment variables a container running `entryPoint` may set: the settings schema
 * (packages/core/src/settings.ts) for the scenecache processes, `CDSE_SIM_ENV_NAMES` for the sim.
 */
export function knownEnvNames(entryPoint: string): ReadonlySet<string> {
  const own = entryPoint === ENTRY_POINTS.sim ? CDSE_SIM_ENV_NAMES : SETTING_NAMES;
  return new Set([...own, ...NODE_ENV_NAMES]);
}

/** Whether the entry point has been built (`npm run build`; `npm test` builds first). */
export function entryPointExists(entryPoint: string): boolean {
  return existsSync(resolve(REPO_ROOT, entryPoint));
}
