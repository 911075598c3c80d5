/**
 * Scenario `dedup`: Deduplication: upstream downloads per distinct (product, band) pair. Placeholder, being built (issue 6).
 */
import type { Scenario } from '../scenario.js';

/** The `dedup` scenario. */
export const scenario: Scenario = {
  id: 'dedup',
  title: 'Deduplication: upstream downloads per distinct (product, band) pair',
  run() {
    return Promise.reject(new Error('scenario dedup is not built yet'));
  },
};
