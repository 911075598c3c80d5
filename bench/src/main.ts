/**
 * `npm run bench` (= build + `node bench/dist/main.js [--quick] [--only id,id] [--out FILE]`):
 * run the scenarios of `scenarios/index.ts` in order, each isolated (a failure is recorded with its
 * error and the next one still runs), print progress lines with the elapsed time, then the results
 * as a padded markdown table, and write them as JSON (plus the same table as `.md` next to it).
 *
 * Output file (unless `--out`): `bench/results/latest.json` for a full run of every scenario,
 * `bench/results/quick.json` with `--quick` (CI's smoke run never overwrites the committed full
 * results), `bench/results/only.json` with `--only` (a partial run does not either).
 * Exit code: 0 when every scenario ran, 1 when any failed, 2 on bad arguments.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { commandFailure, loadSettings, parseCommandLine, UsageError } from '@scenecache/core';
import type { Figure, ScenarioResult } from './scenario.js';
import { SCENARIOS } from './scenarios/index.js';

/** The repository root (bench/dist → ../..). */
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** Command-line options. */
interface Options {
  quick: boolean;
  only?: string[];
  /** Put the `only` scenarios' records into the full run at `out` instead of writing a report of their own. */
  merge: boolean;
  out: string;
}

/**
 * One scenario's entry in the JSON: its result (figures empty when it failed), wall time, error;
 * `run` when it was merged in from a later `--only … --merge` run than the report's own.
 */
type ScenarioRecord = ScenarioResult & { wall_ms: number; error?: string; run?: MergedRun };

/** When, at which commit and on which machine a merged-in record was measured. */
interface MergedRun {
  date: string;
  git_commit: string | null;
  git_dirty: boolean | null;
  machine: Record<string, unknown>;
}

/** What the JSON file holds. */
interface BenchReport {
  /** ISO 8601, when the run started. */
  date: string;
  git_commit: string | null;
  /** Whether the working tree had uncommitted changes (null when git is unavailable). */
  git_dirty: boolean | null;
  quick: boolean;
  only: string[] | null;
  machine: Record<string, unknown>;
  /** Wall time of the whole run, ms. */
  wall_ms: number;
  scenarios: ScenarioRecord[];
}

const USAGE = `usage: npm run bench [-- --quick] [--only id,id [--merge]] [--out FILE]
Runs the scenarios (each against a baseline taken in the same run) and writes bench/results/latest.{json,md}
(quick.json / only.json with --quick / --only, or FILE). --only … --merge puts those scenarios' new
records into the full run's latest.{json,md} (or FILE), each marked with its own run date and commit.
scenarios: ${SCENARIOS.map((s) => s.id).join(', ')}`;

/** @throws UsageError naming what is wrong with the command line. */
function parseArgs(argv: readonly string[]): Options {
  const { values } = parseCommandLine(argv, { usage: USAGE, options: { quick: { type: 'boolean' }, only: { type: 'string' }, merge: { type: 'boolean' }, out: { type: 'string' } } });
  const quick = values.quick === true;
  const merge = values.merge === true;
  const only = typeof values.only === 'string' ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  const out = typeof values.out === 'string' ? values.out : undefined;
  const unknown = only?.filter((id) => !SCENARIOS.some((s) => s.id === id)) ?? [];
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')} (scenarios: ${SCENARIOS.map((s) => s.id).join(', ')})`);
  if (merge && (only === undefined || quick)) throw new UsageError('--merge needs --only and a full-size run (no --quick)');
  const name = quick ? 'quick.json' : only && !merge ? 'only.json' : 'latest.json';
  return { quick, only, merge, out: resolve(out ?? resolve(ROOT, 'bench/results', name)) };
}

/** `git rev-parse HEAD` and whether the tree is dirty; nulls when git fails (no repository, no git). */
function gitState(): { commit: string | null; dirty: boolean | null } {
  const git = (...args: string[]): string | null => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  const commit = git('rev-parse', 'HEAD');
  const status = commit === null ? null : git('status', '--porcelain', '--untracked-files=no');
  return { commit, dirty: status === null ? null : status.length > 0 };
}

/** The machine and the services' versions; a service that does not answer is reported as `unavailable: <why>`. */
async function describeMachine(): Promise<Record<string, unknown>> {
  const settings = loadSettings(process.env);
  const cpuList = cpus();
  const postgres = await (async () => {
    // The server's maintenance database: the configured one may not exist (each scenario makes its own).
    const url = settings.databaseUrl.replace(/\/[^/?]*(\?|$)/, '/postgres$1');
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    try {
      await client.connect();
      const { rows } = await client.query<{ version: string }>('SELECT version()');
      return rows[0]?.version ?? null;
    } catch (err) {
      return `unavailable: ${(err as Error).message}`;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  const redis = await (async () => {
    const client = new Redis(settings.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5_000 });
    try {
      await client.connect();
      const info = await client.info('server');
      const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? null;
      return `Redis ${field('redis_version')} (${field('os')}, ${field('arch_bits')}-bit)`;
    } catch (err) {
      return `unavailable: ${(err as Error).message}`;
    } finally {
      client.disconnect();
    }
  })();
  return {
    cpu_model: cpuList[0]?.model.trim() ?? 'unknown',
    cpu_count: cpuList.length,
    total_memory_bytes: totalmem(),
    node_version: process.version,
    platform: `${process.platform} ${release()} ${process.arch}`,
    postgres_version: postgres,
    redis_version: redis,
    s3: settings.s3Endpoint ? `S3_ENDPOINT ${settings.s3Endpoint}` : 'embedded s3rver 3.7.1 (in the bench process)',
  };
}

/** A number for the table: 3 significant digits at most, no exponent. */
function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01 || a === 0) return v.toFixed(2);
  return v.toPrecision(2);
}

const HEADER = ['scenario', 'figure', 'value', 'baseline', 'ratio', 'goal', 'met'];

/** One row per figure (one per failed scenario, saying so). */
function tableRows(records: readonly ScenarioRecord[]): string[][] {
  const rows: string[][] = [];
  for (const r of records) {
    if (r.error !== undefined) {
      rows.push([r.id, `FAILED: ${r.error.split('\n')[0]!.slice(0, 160)}`, '', '', '', '', '✗']);
      continue;
    }
    for (const f of r.figures as Figure[]) {
      const unit = f.unit === 'ratio' ? '' : ` ${f.unit}`;
      rows.push([
        r.id,
        f.name,
        `${fmt(f.value)}${unit}`,
        f.baseline ? `${f.baseline.name}: ${fmt(f.baseline.value)}${unit}` : '',
        fmt(f.ratio),
        f.goal ?? '',
        f.met === undefined ? '' : f.met ? '✓' : '✗',
      ]);
    }
  }
  return rows;
}

/** A markdown table padded to aligned columns (readable in a terminal, pasteable into README). */
function markdownTable(rows: readonly string[][]): string {
  const escape = (cell: string) => cell.replaceAll('|', '\\|');
  const all = [HEADER, ...rows].map((r) => r.map(escape));
  const widths = HEADER.map((_, i) => Math.max(3, ...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: readonly string[]) => `| ${r.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join(' | ')} |`;
  return [line(all[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...all.slice(1).map(line)].join('\n');
}

/** The `.md` file: the machine in one paragraph, the table, the figures' notes. */
/** The machine of a report (`describeMachine`) in one line. */
function describeMachineLine(m: Record<string, unknown>): string {
  const gib = (Number(m.total_memory_bytes) / 2 ** 30).toFixed(1);
  return `${String(m.cpu_count)} × ${String(m.cpu_model)}, ${gib} GiB RAM, ${String(m.platform)}, Node ${String(m.node_version)}; ${String(m.postgres_version)}; ${String(m.redis_version)}; S3: ${String(m.s3)}`;
}

function markdownReport(report: BenchReport, table: string): string {
  const m = report.machine;
  // One line per distinct note of a scenario, naming every figure that carries it.
  const notes = report.scenarios.flatMap((s) => {
    const byNote = new Map<string, string[]>();
    for (const f of s.figures) if (f.note) byNote.set(f.note, [...(byNote.get(f.note) ?? []), f.name]);
    return [...byNote].map(([note, names]) => `- **${s.id}** — ${names.join('; ')}: ${note}`);
  });
  return [
    `# scenecache benchmarks${report.quick ? ' (quick)' : ''}`,
    '',
    `Run ${report.date} at commit ${report.git_commit ?? 'unknown'}${report.git_dirty ? ' (uncommitted changes)' : ''}, ${(report.wall_ms / 60_000).toFixed(1)} min.`,
    `Machine: ${describeMachineLine(m)}.`,
    ...report.scenarios.flatMap((s) => (s.run ? [`Scenario ${s.id}: run on its own (\`--only ${s.id} --merge\`) ${s.run.date} at commit ${s.run.git_commit ?? 'unknown'}${s.run.git_dirty ? ' (uncommitted changes)' : ''}, on ${describeMachineLine(s.run.machine)}.`] : [])),
    '',
    table,
    '',
    ...(notes.length > 0 ? ['Notes:', '', ...notes, ''] : []),
  ].join('\n');
}

/**
 * The full run of every scenario at `path` (JSON of a `npm run bench` without options).
 * @throws UsageError when `path` holds no full, full-size run.
 */
async function readFullRun(path: string): Promise<BenchReport> {
  let full: BenchReport;
  try {
    full = JSON.parse(await readFile(path, 'utf8')) as BenchReport;
  } catch (err) {
    throw new UsageError(`--merge: cannot read a report at ${path} (${(err as Error).message})`);
  }
  if (full.quick || full.only !== null) throw new UsageError(`--merge: ${path} is not a full run of every scenario`);
  return full;
}

/**
 * `full` with the records of `partial` (an `--only` run) in place of its own (appended when it
 * had none), each marked with the partial run's date and commit.
 */
function mergeIntoFullRun(full: BenchReport, partial: BenchReport): BenchReport {
  const run: MergedRun = { date: partial.date, git_commit: partial.git_commit, git_dirty: partial.git_dirty, machine: partial.machine };
  const fresh = new Map(partial.scenarios.map((r) => [r.id, { ...r, run }]));
  const scenarios = full.scenarios.map((r) => fresh.get(r.id) ?? r);
  for (const [id, r] of fresh) if (!full.scenarios.some((old) => old.id === id)) scenarios.push(r);
  return { ...full, scenarios };
}

/** Write atomically (a `.tmp` file renamed), creating the directory. */
async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

async function main(): Promise<number> {
  // The AWS SDK warns once per process (this one and every spawned worker) that its 2027 versions
  // need Node 22; it says nothing about the run, so the bench's output does without it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const options = parseArgs(process.argv.slice(2));
  // Read before running: a report that cannot take the merge fails now, not after the scenarios.
  const fullRun = options.merge ? await readFullRun(options.out) : undefined;
  const selected = options.only ? SCENARIOS.filter((s) => options.only!.includes(s.id)) : [...SCENARIOS];
  const t0 = performance.now();
  const stamp = () => `[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s]`;
  const date = new Date().toISOString();
  const git = gitState();
  const machine = await describeMachine();
  console.log(`${stamp()} bench${options.quick ? ' --quick' : ''}: ${selected.map((s) => s.id).join(', ')} on ${String(machine.cpu_count)} × ${String(machine.cpu_model)}`);
  process.on('unhandledRejection', (err) => console.log(`${stamp()} warning: unhandled rejection: ${String(err)}`));

  const records: ScenarioRecord[] = [];
  for (const scenario of selected) {
    console.log(`${stamp()} [${scenario.id}] ${scenario.title}`);
    const start = performance.now();
    try {
      const result = await scenario.run({ quick: options.quick, log: (line) => console.log(`${stamp()} [${scenario.id}] ${line}`) });
      const wall = performance.now() - start;
      records.push({ ...result, wall_ms: Math.round(wall) });
      console.log(`${stamp()} [${scenario.id}] done in ${(wall / 1000).toFixed(1)} s`);
    } catch (err) {
      const wall = performance.now() - start;
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      records.push({ id: scenario.id, title: scenario.title, figures: [], wall_ms: Math.round(wall), error });
      console.log(`${stamp()} [${scenario.id}] FAILED after ${(wall / 1000).toFixed(1)} s: ${error}`);
    }
  }

  let report: BenchReport = {
    date,
    git_commit: git.commit,
    git_dirty: git.dirty,
    quick: options.quick,
    only: options.only ?? null,
    machine,
    wall_ms: Math.round(performance.now() - t0),
    scenarios: records,
  };
  const failedIds = records.filter((r) => r.error !== undefined).map((r) => r.id);
  if (fullRun && failedIds.length > 0) {
    // A failed scenario must not replace the good record of the full run.
    console.log(`${stamp()} failed: ${failedIds.join(', ')}; ${options.out} left as it was`);
    return 1;
  }
  if (fullRun) report = mergeIntoFullRun(fullRun, report);
  const table = markdownTable(tableRows(report.scenarios));
  const mdPath = options.out.replace(/\.json$/, '') + '.md';
  await writeAtomically(options.out, JSON.stringify(report, null, 2) + '\n');
  await writeAtomically(mdPath, markdownReport(report, table));
  console.log(`\n${table}\n`);
  console.log(`${stamp()} wrote ${options.out} and ${mdPath}`);
  const failed = records.filter((r) => r.error !== undefined).map((r) => r.id);
  if (failed.length > 0) console.log(`${stamp()} failed: ${failed.join(', ')}`);
  return failed.length > 0 ? 1 : 0;
}

main().then(
  // Exit explicitly: a scenario that leaked a handle must not keep the run alive.
  (code) => process.exit(code),
  (err: unknown) => {
    const { code, message } = commandFailure('scenecache bench', err);
    console.error(message);
    process.exit(code);
  },
);
