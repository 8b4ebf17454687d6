/** Opens a ParameterStore from its StoreSpec. */
import { SqliteStore } from './sqlite-store.js';
import type { ParameterStore, StoreSpec } from './types.js';

export * from './types.js';
export { SqliteStore, openSqliteStore } from './sqlite-store.js';

/** The store types openStore knows. */
export const SUPPORTED_STORE_TYPES = ['sqlite'] as const;

export async function openStore(spec: StoreSpec): Promise<ParameterStore> {
  const type = (spec as { type?: unknown }).type;
  switch (spec.type) {
    case 'sqlite':
      return new SqliteStore(spec.path);
    default:
      throw new Error(`unknown store type ${JSON.stringify(type)}; supported: ${SUPPORTED_STORE_TYPES.join(', ')}`);
  }
}
