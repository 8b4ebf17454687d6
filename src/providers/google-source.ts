/**
 * Where a Google function's code comes from: the OpenWhisk-style CommonJS source `exports.main = async (params) =>
 * …` of a function, by name. FedKeeper's FL functions get theirs from functions/entries (`actionSource`, which
 * imports the handler from `$FEDKEEPER_HOME/dist/src/functions/…`); tests and benchmarks pass their own.
 */
import { actionSource } from '../functions/entries.js';

export type FunctionSource = (functionName: string) => string | Promise<string>;

/** The FL functions' sources. */
export const flFunctionSource: FunctionSource = (functionName) => actionSource(functionName);
