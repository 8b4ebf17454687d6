/**
 * What every platform-neutral FedKeeper function is: a handler `(params, context) => Promise<object>`. The
 * platform's entry wrapper (functions/platform/) builds the context and calls it.
 */

/** What a function sees about its own invocation (OpenWhisk's __OW_* variables, Lambda's context). */
export interface InvocationContext {
  activationId: string;
  functionName: string;
  /** Epoch ms after which the platform kills the invocation. */
  deadline: number;
}

/** The signature every platform-neutral FedKeeper function has. */
export type FunctionHandler = (params: Record<string, unknown>, context: InvocationContext) => Promise<Record<string, unknown>>;

/** Where a function's code lives in this package: an ES module and the name of its exported handler. */
export interface FunctionCode {
  /** file: URL of the module (for running it in-process). */
  module: string;
  /** Module file name under dist/src/functions/ (the entry the packaging bundles from). */
  file: string;
  /** Exported handler name. */
  exportName: string;
}
