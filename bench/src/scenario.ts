/**
 * What a benchmark scenario is and what it reports. Every figure is measured against a baseline
 * or a limit taken in the same run on the same machine (absolute times on a shared machine are
 * noise): the table shows the value, the baseline, their ratio and the goal.
 */

/** What the runner gives a scenario. */
export interface BenchContext {
  /** `--quick`: the smoke-test size CI runs (it must finish, not be fast). */
  readonly quick: boolean;
  /** A progress line (printed with the elapsed time). */
  log(line: string): void;
}

/** One measured figure. */
export interface Figure {
  /** What was measured, e.g. `upstream downloads / distinct pairs (N=10, M=5)`. */
  readonly name: string;
  readonly value: number;
  /** Unit of `value` and of the baseline: `ratio`, `ms`, `jobs/s`, `MB/s`, `MiB`, `slots`… */
  readonly unit: string;
  /** The same-run baseline or limit it is compared with. */
  readonly baseline?: { readonly name: string; readonly value: number };
  /** value / baseline (or whatever the scenario defines; say so in `note`). */
  readonly ratio?: number;
  /** The goal or limit, as text: `1.00`, `< 100 ms`, `≥ 3.6`. */
  readonly goal?: string;
  /** Whether the goal is met (omitted when there is no goal). */
  readonly met?: boolean;
  readonly note?: string;
}

/** What a scenario returns. */
export interface ScenarioResult {
  readonly id: string;
  readonly title: string;
  readonly figures: readonly Figure[];
  /** Raw measurements (samples, sizes, settings) for `bench/results/latest.json`. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** A benchmark scenario (one module per scenario under bench/src/scenarios/). */
export interface Scenario {
  /** Short id for `--only`, e.g. `dedup`. */
  readonly id: string;
  readonly title: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}
