/**
 * A sampled gauge (slots in use, streams at the upstream): readings at known times, their
 * time-weighted mean over a window, and the stretches it spent below a level. Times are epoch ms
 * with sub-ms precision ({@link epochNow}).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** A gauge reading: epoch ms (sub-ms precision) and the value then. */
export interface GaugeSample {
  t: number;
  v: number;
}

/** Epoch ms with sub-ms precision. */
export const epochNow = (): number => performance.timeOrigin + performance.now();

/** Sample `read` every `everyMs` until stopped; each sample's time is the middle of its read. */
export class GaugeSampler {
  readonly samples: GaugeSample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(read: () => number | Promise<number>, everyMs: number) {
    this.loop = (async () => {
      while (this.running) {
        const before = epochNow();
        const v = await read();
        this.samples.push({ t: (before + epochNow()) / 2, v });
        await sleep(everyMs);
      }
    })();
  }

  /** Stop sampling; resolves with every sample once the loop has ended. */
  async stop(): Promise<GaugeSample[]> {
    this.running = false;
    await this.loop;
    return this.samples;
  }
}

/**
 * ∫ v dt / (to − from) of a step function that holds each sample's value until the next sample
 * (the value before the first sample is the first sample's). NaN for an empty window.
 */
export function timeWeightedMean(samples: readonly GaugeSample[], from: number, to: number): number {
  if (!(to > from) || samples.length === 0) return NaN;
  let area = 0;
  for (let i = 0; i < samples.length; i++) {
    const start = i === 0 ? Math.min(samples[0]!.t, from) : samples[i]!.t;
    const end = i + 1 < samples.length ? samples[i + 1]!.t : Math.max(to, samples[i]!.t);
    const a = Math.max(start, from);
    const b = Math.min(end, to);
    if (b > a) area += samples[i]!.v * (b - a);
  }
  return area / (to - from);
}

/** Stretches of `[from, to]` during which the gauge read below `level` (durations in ms). */
export function dipsBelow(samples: readonly GaugeSample[], level: number, from: number, to: number): number[] {
  const dips: number[] = [];
  let start: number | undefined;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    if (s.t < from || s.t > to) continue;
    if (s.v < level && start === undefined) start = s.t;
    if (s.v >= level && start !== undefined) {
      dips.push(s.t - start);
      start = undefined;
    }
  }
  if (start !== undefined) dips.push(to - start);
  return dips;
}
