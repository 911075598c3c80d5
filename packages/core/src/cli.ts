/**
 * What every scenecache command line shares (`npm run api|worker|migrate|keys|demo|bench`):
 *
 * - `--help` / `-h` prints the usage to stdout and exits 0;
 * - bad usage (an unknown option, a missing value, an unexpected argument) and invalid settings
 *   exit 2 with one clear line on stderr (settings: one line per bad variable) — nothing was done;
 * - any other failure exits 1 with its message, no stack trace;
 * - 0 when the command did its job.
 */
import { parseArgs } from 'node:util';
import { ScenecacheError } from './errors.js';

/** Exit codes of every command. */
export const EXIT_CODES = Object.freeze({ ok: 0, failed: 1, usage: 2 });

/** The command line was not one the command accepts (exit 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The options a command declares: strings and flags (as `node:util` `parseArgs` takes them). */
export type CommandOptions = Readonly<Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>>;

/** A parsed command line: option values by name (flags `true`), and the positional arguments. */
export interface CommandLine {
  values: Readonly<Record<string, string | boolean | undefined>>;
  positionals: string[];
}

/**
 * Parse `argv` with `node:util` `parseArgs` (strict), adding `--help` / `-h`: with it, prints
 * `usage` to stdout and exits 0.
 *
 * @param argv - the arguments after the script (`process.argv.slice(2)`).
 * @throws UsageError with Node's own explanation (unknown option, missing value, positional
 *   arguments where none are allowed).
 */
export function parseCommandLine(argv: readonly string[], config: { usage: string; options?: CommandOptions; allowPositionals?: boolean }): CommandLine {
  let parsed: CommandLine;
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...config.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: config.allowPositionals ?? false, strict: true });
    parsed = { values: values, positionals };
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.split('\n')[0]! : String(err));
  }
  if (parsed.values.help === true) {
    process.stdout.write(`${config.usage}\n`);
    process.exit(EXIT_CODES.ok);
  }
  return parsed;
}

/**
 * A string option as a number within `[min, max]`, or `undefined` when not given.
 * @throws UsageError naming the option when it is not such a number.
 */
export function numberOption(line: CommandLine, name: string, min: number, max: number): number | undefined {
  const raw = line.values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a number from ${min} to ${max}, not ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * The exit code and the one line to print for an error that ended a command: 2 for a
 * {@link UsageError} or invalid settings (`ScenecacheError` `invalid_settings`), 1 otherwise.
 */
export function commandFailure(command: string, err: unknown): { code: number; message: string } {
  const text = err instanceof Error ? err.message : String(err);
  if (err instanceof UsageError) return { code: EXIT_CODES.usage, message: `${command}: ${text} (--help for usage)` };
  if (err instanceof ScenecacheError && err.code === 'invalid_settings') return { code: EXIT_CODES.usage, message: `${command}: ${text}` };
  return { code: EXIT_CODES.failed, message: `${command}: ${text}` };
}

/**
 * Run a command's `main` with the shared exit codes. A number it returns becomes the exit code
 * (the process ends when nothing else runs); `undefined` leaves a server running. A thrown error
 * is printed as one line ({@link commandFailure}) and ends the process at once (`process.exit`:
 * a half-started server must not linger).
 *
 * @param command - the name printed in front of error lines, e.g. `scenecache keys`.
 */
export function runCommand(command: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (err: unknown) => {
      const { code, message } = commandFailure(command, err);
      process.stderr.write(`${message}\n`);
      process.exit(code);
    },
  );
}
