/**
 * How an FL function reaches the store from inside its package: PostgreSQL directly (`pg`, a small pool per
 * process), or the keeper's store endpoint over HTTP (a store that is a file on the keeper's machine). Nothing here
 * may pull in a native addon: this module is bundled into every function package.
 */
import { HttpStore } from './http-store.js';
import { FUNCTION_POOL, openPostgresStore } from './postgres-store.js';
import type { FunctionStore, FunctionStoreSpec } from './types.js';

export async function connectStore(spec: FunctionStoreSpec): Promise<FunctionStore> {
  const type = (spec as { type?: unknown }).type;
  switch (spec.type) {
    case 'postgres':
      return openPostgresStore(spec.url, FUNCTION_POOL);
    case 'http':
      return new HttpStore({ url: spec.url, token: spec.token });
    default:
      throw new Error(`a function cannot open a store of type ${JSON.stringify(type)} (it reaches postgres, or the keeper's store endpoint: http)`);
  }
}
