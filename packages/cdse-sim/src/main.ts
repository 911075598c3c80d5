/**
 * `npm run sim`: run cdse-sim alone, e.g. for the demo or to point a local worker at it.
 *
 * Environment (all optional): `CDSE_SIM_PORT` (8089), `CDSE_SIM_HOST` (127.0.0.1),
 * `CDSE_SIM_SIZE_SCALE` (1 = real sizes), `CDSE_SIM_MAX_CONCURRENT_DOWNLOADS` (4),
 * `CDSE_SIM_BYTES_PER_SECOND` (unlimited), `CDSE_SIM_FIXTURES_DIR` (fixtures/cdse),
 * `CDSE_SIM_USERNAME` / `CDSE_SIM_PASSWORD` (demo@scenecache.dev / demo), `LOG_LEVEL` (info).
 * SIGINT/SIGTERM close it; a second signal exits at once. The list of names is `CDSE_SIM_ENV_NAMES` (env.ts).
 */
import { startCdseSim, type CdseSimOptions } from './index.js';

function numberFromEnv(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n)) {
    console.error(`cdse-sim: ${name}=${JSON.stringify(raw)} is not a number`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<void> {
  const username = process.env.CDSE_SIM_USERNAME;
  const password = process.env.CDSE_SIM_PASSWORD;
  const options: Partial<CdseSimOptions> = {
    port: numberFromEnv('CDSE_SIM_PORT') ?? 8089,
    host: process.env.CDSE_SIM_HOST || '127.0.0.1',
    sizeScale: numberFromEnv('CDSE_SIM_SIZE_SCALE'),
    maxConcurrentDownloads: numberFromEnv('CDSE_SIM_MAX_CONCURRENT_DOWNLOADS'),
    bytesPerSecond: numberFromEnv('CDSE_SIM_BYTES_PER_SECOND'),
    fixturesDir: process.env.CDSE_SIM_FIXTURES_DIR || undefined,
    logLevel: process.env.LOG_LEVEL || 'info',
    ...(username && password ? { users: [{ username, password }] } : {}),
  };
  const sim = await startCdseSim(options);
  console.log(`cdse-sim listening on ${sim.url}
  CDSE_TOKEN_URL=${sim.urls.tokenUrl}
  CDSE_CATALOGUE_URL=${sim.urls.catalogueUrl}
  CDSE_DOWNLOAD_URL=${sim.urls.downloadUrl}
  CDSE_USERNAME=${sim.credentials.username}
  CDSE_PASSWORD=${sim.credentials.password}
  counters: ${sim.url}/__sim/counters   faults: POST ${sim.url}/__sim/faults`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      console.error(`cdse-sim: second ${signal}, exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`cdse-sim: ${signal}, closing`);
    sim.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('cdse-sim: close failed', err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error('cdse-sim: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
