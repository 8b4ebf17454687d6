/** Per-process resources FL functions reuse across warm invocations: open stores. */
import { openStore } from '../store/index.js';
import type { ParameterStore, StoreSpec } from '../store/types.js';

const stores = new Map<string, Promise<ParameterStore>>();

export function storeFor(spec: StoreSpec): Promise<ParameterStore> {
  const key = JSON.stringify(spec);
  let s = stores.get(key);
  if (!s) {
    s = openStore(spec);
    stores.set(key, s);
    s.catch(() => stores.delete(key));
  }
  return s;
}
