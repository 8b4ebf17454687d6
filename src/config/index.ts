/** The config loader's public pieces. */
export { ConfigError, formatPath } from './errors.js';
export type { ConfigPath } from './errors.js';
export { loadConfig, parseConfig } from './load.js';
export { redactConfig, isSecretKey, envPathsOf, REDACTED } from './redact.js';
export { FedKeeperConfigSchema } from './schema.js';
export { parseDurationMs, parseMemoryMB } from './units.js';
export type * from './types.js';
