/** Every benchmark scenario, in the order `npm run bench` runs them. */
import type { Scenario } from '../scenario.js';
import { scenario as dedup } from './dedup.js';
import { scenario as reuseLatency } from './reuse-latency.js';
import { scenario as throughput } from './throughput.js';
import { scenario as downloadPath } from './download-path.js';
import { scenario as wakeup } from './wakeup.js';
import { scenario as upstreamCap } from './upstream-cap.js';
import { scenario as freshScene } from './fresh-scene.js';
import { scenario as fairness } from './fairness.js';
import { scenario as history } from './history.js';
import { scenario as maintenance } from './maintenance.js';

/** Issue 6's six scenarios, in its order, then issue 11's two, issue 14's and issue 15's. */
export const SCENARIOS: readonly Scenario[] = Object.freeze([dedup, reuseLatency, throughput, downloadPath, wakeup, upstreamCap, freshScene, fairness, history, maintenance]);
