/**
 * The FL functions this package ships, by name, and where each one's code lives. A provider deploys code from here
 * as its package (src/packaging: the handler behind the platform's entry wrapper, functions/platform/); each module
 * is a platform-neutral handler
 * `(params, context) => Promise<object>` and can be deployed alone.
 */
import type { FunctionCode } from './types.js';

const here = (file: string): FunctionCode => ({ module: new URL(file, import.meta.url).href, file, exportName: 'handler' });

export const FUNCTION_CATALOG: Readonly<Record<string, FunctionCode>> = {
  fl_server_init: here('fl-server-init.js'),
  fl_client: here('fl-client.js'),
  fl_server_aggregator: here('fl-server-aggregator.js'),
  fl_invoker_weights_update: here('fl-invoker-weights-update.js'),
  nodeinfo: here('nodeinfo.js'),
};

export function functionCode(name: string): FunctionCode | undefined {
  return Object.hasOwn(FUNCTION_CATALOG, name) ? FUNCTION_CATALOG[name] : undefined;
}
