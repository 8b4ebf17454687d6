/** Opens a ParameterStore from its StoreSpec. */
import { openPostgresStore, type PostgresStoreOptions } from './postgres-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { ParameterStore, StoreSpec } from './types.js';

export * from './types.js';
export { SqliteStore, openSqliteStore } from './sqlite-store.js';
export {
  FUNCTION_POOL,
  KEEPER_POOL,
  PostgresStore,
  openPostgresStore,
  type PostgresStoreOptions,
} from './postgres-store.js';
export { StoreUnreachableError, StoreUrlError } from './errors.js';
export { redactUrlPassword } from './store-url.js';

/** The store types openStore knows. */
export const SUPPORTED_STORE_TYPES = ['sqlite', 'postgres'] as const;

/**
 * Opens the store `spec` names. A PostgreSQL store connects and migrates before this resolves (an unreachable
 * server is a StoreUnreachableError); `postgres` are its pool options (default: the keeper's).
 */
export async function openStore(spec: StoreSpec, postgres?: PostgresStoreOptions): Promise<ParameterStore> {
  const type = (spec as { type?: unknown }).type;
  switch (spec.type) {
    case 'sqlite':
      return new SqliteStore(spec.path);
    case 'postgres':
      return openPostgresStore(spec.url, postgres);
    default:
      throw new Error(`unknown store type ${JSON.stringify(type)}; supported: ${SUPPORTED_STORE_TYPES.join(', ')}`);
  }
}
