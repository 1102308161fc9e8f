/** Lab tests share one kernel per namespace set; run files one at a time to keep the 2-core CI machine calm. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  globalSetup: '<rootDir>/test/lab/global-setup.js',
  testTimeout: 60000,
};
