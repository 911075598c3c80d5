/**
 * Spawned Node processes (workers in tests and benchmarks) followed through their pino JSON logs.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { killProcessGroup } from './process-group.js';

/** One pino JSON line of a spawned worker. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A spawned process (e.g. `apps/worker/dist/main.js`) with its JSON log captured, see {@link captureJsonLogs}. */
export interface SpawnedWorker {
  child: ChildProcess;
  pid: number;
  /** Every JSON log line so far (LOG_LEVEL info unless overridden). */
  logs: LogLine[];
  /** Resolves with the first line (past or future) that `match` accepts. @throws after `timeoutMs` or when the process exits first. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves when the process has exited (immediately if it has). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Send `signal` (default SIGKILL; to the whole process group when the process leads one, see `spawnProcessGroup`) and wait for the exit. */
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Follow a spawned Node process (a worker, usually) that logs pino JSON lines on stdout: every
 * line is parsed and kept, {@link SpawnedWorker.waitForLog} waits for one, and `kill`/`exited`
 * follow its exit. Lines that are not JSON are kept as `{msg}`.
 */
export function captureJsonLogs(child: ChildProcess): SpawnedWorker {
  const logs: LogLine[] = [];
  const listeners = new Set<(line: LogLine) => void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    logs.push(line);
    for (const l of listeners) l(line);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolveExit({ code, signal }));
  });
  return {
    child,
    pid: child.pid!,
    logs,
    exited,
    waitForLog(match, timeoutMs = 30_000) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolveLine, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(onLine);
        };
        const onLine = (line: LogLine): void => {
          if (!match(line)) return;
          done();
          resolveLine(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`worker ${child.pid}: no matching log line within ${timeoutMs} ms`));
        }, timeoutMs);
        listeners.add(onLine);
        void exited.then((e) => {
          if (!listeners.has(onLine)) return;
          done();
          reject(new Error(`worker ${child.pid} exited (${e.code ?? e.signal}) before a matching log line`));
        });
      });
    },
    async kill(signal = 'SIGKILL') {
      if (signal === 'SIGKILL') killProcessGroup(child, signal);
      else if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
