/**
 * Code for a Google function deployed WITHOUT a package: an OpenWhisk-style CommonJS source
 * `exports.main = async (params) => …`, by name, which google-entry wraps for GCF. FedKeeper's own functions never
 * come this way (they deploy from their packages, src/packaging); tests and benchmarks pass their own sources.
 */
export type FunctionSource = (functionName: string) => string | Promise<string>;

/** The default: no source; FedKeeper's functions bring their packages. */
export const flFunctionSource: FunctionSource = (functionName) => {
  throw new Error(`${functionName} has no package: FedKeeper's functions deploy from their packages (fedkeeper package -c CONFIG)`);
};
