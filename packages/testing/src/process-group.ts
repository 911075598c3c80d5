/**
 * Child processes that die with whoever started them: each is spawned as the leader of its own
 * process group (`detached: true`), so a kill reaches it and everything it started, and every
 * group still alive when this process exits (a failed test, a thrown error, jest closing the
 * worker) is sent SIGKILL from a synchronous `exit` handler. A detached group does not get the
 * terminal's Ctrl-C, so SIGINT, SIGTERM and SIGHUP kill the groups too, then take their usual
 * course (the signal is raised again when nothing else listens for it).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Send `signal` to the process group led by `child` (its pid, negated), falling back to the child
 * alone when the group is already gone. Does nothing once the child has exited.
 */
export function killProcessGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function killAllOnExit(): void {
  for (const child of live) killProcessGroup(child, 'SIGKILL');
}

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function onSignal(signal: NodeJS.Signals): void {
  killAllOnExit();
  if (process.listenerCount(signal) > 1) return; // someone else decides what the signal does
  for (const s of FORWARDED) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

/**
 * `child_process.spawn(command, args, options)` with the child leading a new process group, killed
 * (SIGKILL to the whole group) when this process exits, whatever the reason. Signals meant for
 * the child alone (a graceful SIGTERM) still go through `child.kill`; {@link killProcessGroup}
 * ends it and its own children.
 */
export function spawnProcessGroup(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  if (!exitHookInstalled) {
    process.on('exit', killAllOnExit);
    for (const s of FORWARDED) process.on(s, onSignal);
    exitHookInstalled = true;
  }
  const child = spawn(command, args, { ...options, detached: true });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}
