/**
 * The Dockerfile and .dockerignore, tied to the code (no Docker engine here: nothing is built).
 * A small parser reads the Dockerfile's stages and instructions; the checks are what an image
 * build would find out too late: a missing workspace manifest for `npm ci`, a COPY source that is
 * not in the build context, a package, page or fixture a process reads at run time that never
 * reached the final stage, or a process that is not PID 1.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_FIXTURES_DIR } from '@scenecache/cdse-sim';
import { DASHBOARD_PUBLIC_DIR } from '../../apps/api/src/dashboard/dashboard.routes.js';
import { TEMPLATE_FILES } from '../../packages/cdse-sim/src/safe-template.js';
import { ENTRY_POINTS, entryPointExists, REPO_ROOT } from './deployment-facts.js';

/** One instruction: its keyword (upper-case) and its arguments (continuation lines joined). */
interface Instruction {
  keyword: string;
  args: string;
}

/** One stage: `FROM <image> [AS <name>]` and its instructions. */
interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** A parsed COPY: its flags (`--from`, ...), sources and destination as written. */
interface CopyInstruction {
  flags: Record<string, string>;
  sources: string[];
  dest: string;
}

/** Split a Dockerfile into stages (comments and parser directives dropped, `\` continuations joined). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (pending !== '' && line.startsWith('#')) continue; // comment inside a continuation
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(`${pending}${line}`.trim());
    pending = '';
  }
  if (pending !== '') logical.push(pending.trim());
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = rest;
      stages.push({ image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${instruction.keyword} before FROM`);
    stage.instructions.push(instruction);
  }
  return stages;
}

/** `COPY [--flag=value ...] <src>... <dest>` (shell form; JSON form when it starts with `[`). */
function parseCopy(args: string): CopyInstruction {
  const flags: Record<string, string> = {};
  let rest = args.trim();
  for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
    flags[m[1]!] = m[2] ?? 'true';
    rest = rest.slice(m[0].length);
  }
  const words = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  const dest = words.at(-1);
  if (dest === undefined || words.length < 2) throw new Error(`COPY needs a source and a destination: ${args}`);
  return { flags, sources: words.slice(0, -1), dest };
}

/** The exec-form array of ENTRYPOINT/CMD, or `undefined` for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.trim().startsWith('[')) return undefined;
  return JSON.parse(args) as string[];
}

/** The last value of `keyword` in a stage (ENTRYPOINT, CMD, USER, WORKDIR take the last one). */
function last(stage: Stage, keyword: string): string | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1)?.args;
}

/** The stage's WORKDIR at instruction `index` (Docker's default is `/`). */
function workdirAt(stage: Stage, index: number): string {
  let dir = '/';
  for (const i of stage.instructions.slice(0, index)) if (i.keyword === 'WORKDIR') dir = posix.resolve(dir, i.args.trim());
  return dir;
}

/** Absolute in-image path of a COPY destination for `source` (a trailing `/` or several sources mean "into this folder"). */
function copyTarget(copy: CopyInstruction, source: string, workdir: string): string {
  const dest = posix.resolve(workdir, copy.dest);
  return copy.dest.endsWith('/') || copy.sources.length > 1 ? posix.join(dest, posix.basename(source)) : dest;
}

/** `.dockerignore` as Docker applies it: the last matching pattern wins, `!` re-includes, a match on a parent folder counts. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize(negate ? l.slice(1).trim() : l).replace(/^\/+|\/+$/g, '');
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i]!;
        if (c === '*' && pattern[i + 1] === '*') {
          // `**/` matches any number of folders (zero included); a final `**` anything.
          if (pattern[i + 2] === '/') {
            re += '(?:.*/)?';
            i += 2;
          } else {
            re += '.*';
            i += 1;
          }
        } else if (c === '*') re += '[^/]*';
        else if (c === '?') re += '[^/]';
        else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const rule of rules) if (candidates.some((c) => rule.re.test(c))) ignored = !rule.negate;
    return ignored;
  };
}

/** Files under `dir` (repo-relative), skipping installed modules and build output. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(resolve(REPO_ROOT, dir), { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const path = posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

/** Repo-relative folders matched by the root package.json's `workspaces` globs (`dir/*` or `dir`). */
function workspaceDirs(): string[] {
  const root = JSON.parse(readFileSync(resolve(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  return root.workspaces.flatMap((glob) => {
    if (!glob.endsWith('/*')) return [glob];
    const parent = glob.slice(0, -2);
    return readdirSync(resolve(REPO_ROOT, parent))
      .map((name) => `${parent}/${name}`)
      .filter((dir) => existsSync(resolve(REPO_ROOT, dir, 'package.json')));
  });
}

/** Workspace package name → its folder. */
function workspacesByName(): Map<string, string> {
  return new Map(workspaceDirs().map((dir) => [(JSON.parse(readFileSync(resolve(REPO_ROOT, dir, 'package.json'), 'utf8')) as { name: string }).name, dir]));
}

/** The workspace folders `dir` needs at run time: itself and its workspace `dependencies`, transitively. */
function runtimeWorkspaceClosure(dir: string, byName: Map<string, string>, seen = new Set<string>()): Set<string> {
  if (seen.has(dir)) return seen;
  seen.add(dir);
  const pkg = JSON.parse(readFileSync(resolve(REPO_ROOT, dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const name of Object.keys(pkg.dependencies ?? {})) {
    const dep = byName.get(name);
    if (dep !== undefined) runtimeWorkspaceClosure(dep, byName, seen);
  }
  return seen;
}

/** TypeScript projects `tsc -b <dirs>` builds: the given ones and their `references`, transitively. */
function tscBuildClosure(dirs: string[], seen = new Set<string>()): Set<string> {
  for (const dir of dirs) {
    const clean = posix.normalize(dir).replace(/\/+$/, '');
    if (seen.has(clean)) continue;
    seen.add(clean);
    const config = JSON.parse(readFileSync(resolve(REPO_ROOT, clean, 'tsconfig.json'), 'utf8')) as { references?: { path: string }[] };
    tscBuildClosure((config.references ?? []).map((r) => posix.join(clean, r.path)), seen);
  }
  return seen;
}

/** The workspace folder holding an entry point (`apps/api/dist/main.js` → `apps/api`). */
function packageDirOf(entryPoint: string): string {
  const dir = workspaceDirs().find((d) => entryPoint.startsWith(`${d}/`));
  if (dir === undefined) throw new Error(`${entryPoint} is in no workspace`);
  return dir;
}

/** The TypeScript source an entry point is compiled from (`apps/api/dist/main.js` → `apps/api/src/main.ts`). */
function sourceOf(entryPoint: string): string {
  return entryPoint.replace('/dist/', '/src/').replace(/\.js$/, '.ts');
}

/**
 * Walk the modules a process loads from `entrySource` (static and dynamic imports, `createRequire`
 * loads; type-only imports skipped), through relative imports and `@scenecache/*` packages.
 * Returns, per workspace folder reached, the third-party packages its modules load.
 */
function runtimeImports(entrySource: string, byName: Map<string, string>): Map<string, Set<string>> {
  const dirs = [...byName.values()];
  const byWorkspace = new Map<string, Set<string>>();
  const seen = new Set<string>();
  const queue = [entrySource];
  const specifiers = (text: string): string[] => [
    ...[...text.matchAll(/^\s*(?:import|export)\s+(type\s+)?[^'";]*?\sfrom\s+['"]([^'"]+)['"]/gm)].filter((m) => m[1] === undefined).map((m) => m[2]!),
    ...[...text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
    ...[...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
    ...[...text.matchAll(/createRequire\(import\.meta\.url\)(?:\.resolve)?\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
  ];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const workspace = dirs.find((d) => file.startsWith(`${d}/`));
    if (workspace === undefined) throw new Error(`${file} is in no workspace`);
    const packages = byWorkspace.get(workspace) ?? new Set<string>();
    byWorkspace.set(workspace, packages);
    for (const spec of specifiers(readFileSync(resolve(REPO_ROOT, file), 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = posix.join(posix.dirname(file), spec).replace(/\.js$/, '.ts');
        if (!existsSync(resolve(REPO_ROOT, target))) throw new Error(`${file}: cannot resolve ${spec}`);
        queue.push(target);
        continue;
      }
      if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      packages.add(name);
      const dir = byName.get(name);
      if (dir !== undefined) queue.push(existsSync(resolve(REPO_ROOT, dir, 'src/index.ts')) ? `${dir}/src/index.ts` : `${dir}/index.ts`);
    }
  }
  return byWorkspace;
}

const dockerfileText = readFileSync(resolve(REPO_ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfileText);
const finalStage = stages.at(-1)!;
const isIgnored = dockerignore(readFileSync(resolve(REPO_ROOT, '.dockerignore'), 'utf8'));

/** Every COPY of a stage with the WORKDIR it runs in and its position. */
function copiesOf(stage: Stage): { copy: CopyInstruction; workdir: string; index: number }[] {
  return stage.instructions.flatMap((i, index) => (i.keyword === 'COPY' ? [{ copy: parseCopy(i.args), workdir: workdirAt(stage, index), index }] : []));
}

/** Index of the first RUN of a stage whose command contains `text`. */
function runIndex(stage: Stage, text: RegExp): number {
  return stage.instructions.findIndex((i) => i.keyword === 'RUN' && text.test(i.args));
}

describe('Dockerfile parser (self-check)', () => {
  it('reads stages, continuations, COPY flags and dockerignore rules as Docker does', () => {
    const parsed = parseDockerfile('# c\nFROM a:1 AS one\nRUN x \\\n  # inner\n  y\nFROM b\nCOPY --from=one /s d/\n');
    expect(parsed).toEqual([
      { image: 'a:1', name: 'one', instructions: [{ keyword: 'RUN', args: 'x y' }] },
      { image: 'b', name: undefined, instructions: [{ keyword: 'COPY', args: '--from=one /s d/' }] },
    ]);
    expect(parseCopy('--from=one --chown=1:1 a b dest/')).toEqual({ flags: { from: 'one', chown: '1:1' }, sources: ['a', 'b'], dest: 'dest/' });
    const ignore = dockerignore('*\n!keep\n**/drop\n');
    expect([ignore('other/x'), ignore('keep/x'), ignore('keep/a/drop/x'), ignore('keep/drop')]).toEqual([true, false, true, true]);
  });
});

describe('Dockerfile', () => {
  it('is multi-stage on node:22-slim', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.image).toBe('node:22-slim');
  });

  it('final stage: NODE_ENV=production, a non-root numeric user, node as PID 1 running an entry point', () => {
    expect(finalStage.instructions.some((i) => i.keyword === 'ENV' && /(^|\s)NODE_ENV=production(\s|$)/.test(i.args))).toBe(true);
    const user = last(finalStage, 'USER');
    expect(user).toBeDefined();
    const [uid = ''] = user!.split(':');
    // Numeric, so Kubernetes runAsNonRoot can verify it; not root.
    expect(uid).toMatch(/^\d+$/);
    expect(uid).not.toBe('0');

    const entrypoint = execForm(last(finalStage, 'ENTRYPOINT') ?? '');
    const cmd = execForm(last(finalStage, 'CMD') ?? '');
    // Exec form: node itself is PID 1 and gets SIGTERM (a shell form would put /bin/sh there).
    expect(entrypoint).toEqual(['node']);
    expect(cmd).toBeDefined();
    expect(cmd!.length).toBe(1);
    expect(Object.values(ENTRY_POINTS)).toContain(cmd![0]);
    expect(entryPointExists(cmd![0]!)).toBe(true);
    expect(dockerfileText).not.toMatch(/^\s*(ENTRYPOINT|CMD)\s.*\bnpm\b/m);
    expect(dockerfileText).not.toMatch(/\b(tini|dumb-init)\b/);
  });

  it('installs with npm ci: everything in the build stage, runtime dependencies only (`--omit=dev`) in the final stage, no install scripts', () => {
    const root = JSON.parse(readFileSync(resolve(REPO_ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    // No package's install script is allowed by the project (npm 11 `allowScripts`), so none may be needed.
    expect(root.allowScripts).toBeUndefined();
    const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
    const finalInstalls = runs(finalStage).filter((r) => /\bnpm ci\b/.test(r));
    expect(finalInstalls).toHaveLength(1);
    expect(finalInstalls[0]).toMatch(/--omit=dev\b/);
    expect(finalInstalls[0]).toMatch(/--ignore-scripts\b/);
    for (const stage of stages.slice(0, -1)) {
      for (const install of runs(stage).filter((r) => /\bnpm ci\b/.test(r))) {
        expect(install).not.toMatch(/--omit=dev/);
        expect(install).toMatch(/--ignore-scripts\b/);
      }
    }
    // The final stage compiles nothing and runs no npm script.
    expect(runs(finalStage).some((r) => /\btsc\b|npm run\b/.test(r))).toBe(false);
  });

  it('every workspace manifest (and the lockfile) is in place before each `npm ci`', () => {
    const manifests = ['package.json', 'package-lock.json', ...workspaceDirs().map((d) => `${d}/package.json`)];
    for (const stage of stages) {
      const install = runIndex(stage, /\bnpm ci\b/);
      if (install < 0) continue;
      const targets = new Set(
        copiesOf(stage)
          .filter(({ index, copy }) => index < install && copy.flags.from === undefined)
          .flatMap(({ copy, workdir }) => copy.sources.map((s) => posix.relative(workdir, copyTarget(copy, s, workdir)))),
      );
      for (const manifest of manifests) expect({ stage: stage.name, manifest, copied: targets.has(manifest) }).toEqual({ stage: stage.name, manifest, copied: true });
    }
  });

  it('the build stage compiles every project an entry point needs', () => {
    const build = stages.find((s) => s.name === 'build')!;
    const tsc = build.instructions.find((i) => i.keyword === 'RUN' && /\btsc\b.*\s-b\s/.test(i.args));
    expect(tsc).toBeDefined();
    const projects = tscBuildClosure(tsc!.args.split(/\s-b\s/)[1]!.trim().split(/\s+/));
    const byName = workspacesByName();
    for (const entryPoint of Object.values(ENTRY_POINTS)) {
      for (const dir of runtimeWorkspaceClosure(packageDirOf(entryPoint), byName)) expect({ entryPoint, dir, built: projects.has(dir) }).toEqual({ entryPoint, dir, built: true });
    }
  });

  it('every COPY source exists: in the build context (and not .dockerignored) or in the stage it is copied from', () => {
    for (const stage of stages) {
      for (const { copy } of copiesOf(stage)) {
        for (const source of copy.sources) {
          if (copy.flags.from === undefined) {
            expect({ source, exists: existsSync(resolve(REPO_ROOT, source)) }).toEqual({ source, exists: true });
            expect({ source, ignored: isIgnored(posix.normalize(source)) }).toEqual({ source, ignored: false });
            continue;
          }
          const from = stages.find((s) => s.name === copy.flags.from);
          expect({ source, from: from?.name }).toEqual({ source, from: copy.flags.from });
          const inRepo = posix.relative(workdirAt(from!, from!.instructions.length), source);
          // Output of that stage's `tsc -b` (a project's dist/), or a file copied into it.
          const tsc = from!.instructions.find((i) => i.keyword === 'RUN' && /\btsc\b.*\s-b\s/.test(i.args));
          const compiled = tsc !== undefined && inRepo.endsWith('/dist') && tscBuildClosure(tsc.args.split(/\s-b\s/)[1]!.trim().split(/\s+/)).has(posix.dirname(inRepo));
          // (A dist/ under a copied folder is .dockerignored: it must come from tsc.)
          const copied = !isIgnored(inRepo) && copiesOf(from!).some(({ copy: c, workdir }) => c.flags.from === undefined && c.sources.some((s) => {
            const target = copyTarget(c, s, workdir);
            return source === target || source.startsWith(`${target}/`);
          }));
          expect({ source, inStage: compiled || copied }).toEqual({ source, inStage: true });
          // Built here by `npm test` (pretest), as the image build would.
          expect({ source, exists: existsSync(resolve(REPO_ROOT, inRepo)) }).toEqual({ source, exists: true });
        }
      }
    }
  });

  it('the final stage holds what the processes read at run time', () => {
    const covered = copiesOf(finalStage).flatMap(({ copy, workdir }) => copy.sources.map((s) => copyTarget(copy, s, workdir)));
    const workdir = workdirAt(finalStage, finalStage.instructions.length);
    const inImage = (repoPath: string) => {
      const target = posix.join(workdir, repoPath);
      return covered.some((c) => target === c || target.startsWith(`${c}/`));
    };
    const byName = workspacesByName();
    const required = new Set<string>();
    for (const entryPoint of Object.values(ENTRY_POINTS)) {
      required.add(entryPoint);
      for (const dir of runtimeWorkspaceClosure(packageDirOf(entryPoint), byName)) {
        required.add(`${dir}/package.json`);
        required.add(`${dir}/dist`);
      }
    }
    // The API's dashboard page and cdse-sim's manifests, where the code looks for them.
    const publicDir = relative(REPO_ROOT, DASHBOARD_PUBLIC_DIR).split('\\').join('/');
    required.add(publicDir);
    for (const file of readdirSync(DASHBOARD_PUBLIC_DIR)) required.add(`${publicDir}/${file}`);
    const fixturesDir = relative(REPO_ROOT, fileURLToPath(DEFAULT_FIXTURES_DIR)).split('\\').join('/');
    for (const file of Object.values(TEMPLATE_FILES)) {
      required.add(`${fixturesDir}/${file}`);
      expect(existsSync(resolve(REPO_ROOT, fixturesDir, file))).toBe(true);
    }
    expect(required).toContain('migrations/dist');
    for (const path of required) expect({ path, inImage: inImage(path) }).toEqual({ path, inImage: true });
  });

  it('every package a process loads at run time is a production dependency of its workspace (what `npm ci --omit=dev` installs)', () => {
    const byName = workspacesByName();
    let checked = 0;
    for (const entryPoint of Object.values(ENTRY_POINTS)) {
      const closure = runtimeWorkspaceClosure(packageDirOf(entryPoint), byName);
      for (const [workspace, packages] of runtimeImports(sourceOf(entryPoint), byName)) {
        expect({ entryPoint, workspace, declared: closure.has(workspace) }).toEqual({ entryPoint, workspace, declared: true });
        const pkg = JSON.parse(readFileSync(resolve(REPO_ROOT, workspace, 'package.json'), 'utf8')) as { name: string; dependencies?: Record<string, string> };
        for (const name of packages) {
          checked++;
          if (name === pkg.name) continue;
          expect({ workspace, name, dependency: name in (pkg.dependencies ?? {}) }).toEqual({ workspace, name, dependency: true });
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
    // The walk sees through to the packages that matter (s3rver: the embedded S3's, loaded by
    // @scenecache/storage even when S3_ENDPOINT is set, so it is a runtime dependency).
    const api = runtimeImports(sourceOf(ENTRY_POINTS.api), byName);
    expect([...(api.get('apps/api') ?? [])]).toEqual(expect.arrayContaining(['fastify', 'chart.js', '@fastify/rate-limit']));
    expect([...(api.get('packages/storage') ?? [])]).toContain('s3rver');
    expect([...(runtimeImports(sourceOf(ENTRY_POINTS.migrate), byName).keys())].sort()).toEqual(['migrations', 'packages/core', 'packages/db']);
  });

  it('carries OCI labels', () => {
    const labels = finalStage.instructions.filter((i) => i.keyword === 'LABEL').map((i) => i.args).join(' ');
    for (const key of ['title', 'description', 'version']) expect(labels).toContain(`org.opencontainers.image.${key}=`);
  });
});

describe('.dockerignore', () => {
  it('keeps installed modules, build output and state, tests, VCS, local data and CI output out of the context', () => {
    for (const path of [
      'node_modules/zod/package.json',
      'packages/core/node_modules/x/index.js',
      'apps/api/dist/main.js',
      'packages/db/dist/migrate.cli.js',
      'packages/db/tsconfig.tsbuildinfo',
      'apps/api/test/health.int.test.ts',
      'packages/core/src/settings.test.ts',
      'test/deploy/deployment-facts.ts',
      '.git/HEAD',
      '.data/s3/bucket/key',
      '.ci/out/dashboard.png',
      '.env',
      'bench/results/x.json',
    ]) {
      expect({ path, ignored: isIgnored(path) }).toEqual({ path, ignored: true });
    }
  });

  it('lets in every file the build compiles and the image copies', () => {
    const build = stages.find((s) => s.name === 'build')!;
    const tsc = build.instructions.find((i) => i.keyword === 'RUN' && /\btsc\b/.test(i.args))!;
    const projects = tscBuildClosure(tsc.args.split(/\s-b\s/)[1]!.trim().split(/\s+/));
    const needed = ['tsconfig.base.json', ...workspaceDirs().map((d) => `${d}/package.json`)];
    for (const project of projects) {
      needed.push(`${project}/tsconfig.json`);
      const srcDir = existsSync(resolve(REPO_ROOT, project, 'src')) ? `${project}/src` : project;
      needed.push(...filesUnder(srcDir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && (srcDir !== project || dirname(f) === project)));
    }
    for (const file of filesUnder(relative(REPO_ROOT, DASHBOARD_PUBLIC_DIR).split('\\').join('/'))) needed.push(file);
    for (const file of Object.values(TEMPLATE_FILES)) needed.push(posix.join(relative(REPO_ROOT, fileURLToPath(DEFAULT_FIXTURES_DIR)).split('\\').join('/'), file));
    expect(needed.length).toBeGreaterThan(50);
    for (const path of needed) {
      expect(statSync(join(REPO_ROOT, path)).isFile()).toBe(true);
      expect({ path, ignored: isIgnored(path) }).toEqual({ path, ignored: false });
    }
  });
});
