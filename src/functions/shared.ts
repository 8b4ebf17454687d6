/** Per-process resources FL functions reuse across warm invocations: open stores. */
import { connectStore } from '../store/connect.js';
import type { FunctionStore, FunctionStoreSpec } from '../store/types.js';

const stores = new Map<string, Promise<FunctionStore>>();

export function storeFor(spec: FunctionStoreSpec): Promise<FunctionStore> {
  const key = JSON.stringify(spec);
  let s = stores.get(key);
  if (!s) {
    s = connectStore(spec);
    stores.set(key, s);
    s.catch(() => stores.delete(key));
  }
  return s;
}
