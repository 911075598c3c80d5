/**
 * Scenario `throughput`: Throughput: reused jobs per second with 1, 2 and 4 worker processes. Placeholder, being built (issue 6).
 */
import type { Scenario } from '../scenario.js';

/** The `throughput` scenario. */
export const scenario: Scenario = {
  id: 'throughput',
  title: 'Throughput: reused jobs per second with 1, 2 and 4 worker processes',
  run() {
    return Promise.reject(new Error('scenario throughput is not built yet'));
  },
};
