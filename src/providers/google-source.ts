/**
 * Where a Google function's code comes from: the OpenWhisk-style CommonJS source `exports.main = async (params) =>
 * …` of a function, by name. FedKeeper's FL functions get theirs from `src/functions/entries.ts`
 * (`actionSource(name)`); tests and benchmarks pass their own.
 */
export type FunctionSource = (functionName: string) => string | Promise<string>;

interface EntriesModule {
  actionSource(functionName: string): string;
}

/**
 * The FL functions' sources from functions/entries.js. Imported by a computed URL at call time: the providers must
 * not load the FL code (or fail to compile) just because a platform module is imported.
 */
export const flFunctionSource: FunctionSource = async (functionName) => {
  const url = new URL('../functions/entries.js', import.meta.url).href;
  let entries: EntriesModule;
  try {
    entries = (await import(url)) as EntriesModule;
  } catch (e) {
    throw new Error(`cannot load the FL function entries (${(e as Error).message})`);
  }
  if (typeof entries.actionSource !== 'function') throw new Error('functions/entries.js has no actionSource(name)');
  return entries.actionSource(functionName);
};
