/**
 * Scenario `download-path`: Download path: upstream → global bucket MB/s and worker RSS. Placeholder, being built (issue 6).
 */
import type { Scenario } from '../scenario.js';

/** The `download-path` scenario. */
export const scenario: Scenario = {
  id: 'download-path',
  title: 'Download path: upstream → global bucket MB/s and worker RSS',
  run() {
    return Promise.reject(new Error('scenario download-path is not built yet'));
  },
};
