// Projects: pure unit tests (*.test.ts), integration tests (*.int.test.ts) that talk to real
// Postgres, Redis, S3 (s3rver) and cdse-sim, and the chaos suite (*.chaos.test.ts, run by
// `npm run test:chaos` only). `npm test` builds first (pretest): integration tests spawn the
// compiled worker and API.
import { createDefaultEsmPreset } from 'ts-jest';

const preset = createDefaultEsmPreset({ tsconfig: '<rootDir>/tsconfig.eslint.json', });
const moduleNameMapper = {
  '^@scenecache/migrations$': '<rootDir>/migrations/index.ts',
  '^@scenecache/(.*)$': '<rootDir>/packages/$1/src/index.ts',
  '^(\\.{1,2}/.*)\\.js$': '$1',
};
const common = { ...preset, moduleNameMapper, testEnvironment: 'node', roots: ['<rootDir>/packages', '<rootDir>/apps', '<rootDir>/migrations', '<rootDir>/test'] };

/** @type {import('jest').Config} */
export default {
  // Integration tests start servers and processes; hooks get the same budget.
  testTimeout: 120_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['**/*.test.ts'], testPathIgnorePatterns: ['\\.int\\.test\\.ts$', '\\.chaos\\.test\\.ts$', '/dist/', '/node_modules/'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['**/*.int.test.ts'],
      testPathIgnorePatterns: ['/dist/', '/node_modules/'],
      globalSetup: '<rootDir>/packages/testing/global-setup.mjs',
    },
    // `npm run test:chaos` only: the chaos suite (minutes, kills processes).
    {
      ...common,
      displayName: 'chaos',
      testMatch: ['**/*.chaos.test.ts'],
      testPathIgnorePatterns: ['/dist/', '/node_modules/'],
      globalSetup: '<rootDir>/packages/testing/global-setup.mjs',
    },
  ],
};
