/**
 * Scenario `reuse-latency`: Reuse latency: enqueue → completed for a cached 4-band product. Placeholder, being built (issue 6).
 */
import type { Scenario } from '../scenario.js';

/** The `reuse-latency` scenario. */
export const scenario: Scenario = {
  id: 'reuse-latency',
  title: 'Reuse latency: enqueue → completed for a cached 4-band product',
  run() {
    return Promise.reject(new Error('scenario reuse-latency is not built yet'));
  },
};
