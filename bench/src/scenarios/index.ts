/** Every benchmark scenario, in the order `npm run bench` runs them. */
import type { Scenario } from '../scenario.js';
import { scenario as dedup } from './dedup.js';
import { scenario as reuseLatency } from './reuse-latency.js';
import { scenario as throughput } from './throughput.js';
import { scenario as downloadPath } from './download-path.js';
import { scenario as wakeup } from './wakeup.js';
import { scenario as upstreamCap } from './upstream-cap.js';

/** Issue 6's six scenarios, in its order. */
export const SCENARIOS: readonly Scenario[] = Object.freeze([dedup, reuseLatency, throughput, downloadPath, wakeup, upstreamCap]);
