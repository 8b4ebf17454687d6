/**
 * Messages between a WorkerPool and its worker processes (IPC, structured-clone serialisation so typed arrays cross
 * without JSON). A worker mirrors the OpenWhisk action-runtime contract: code is loaded ("init") the first time a
 * worker runs a function — that is the cold start — and reused for every later run on that worker.
 */

/** Where a function's code lives: an ES module and the name of its exported handler. */
export interface FunctionCode {
  /** file: URL or absolute path of the module. */
  module: string;
  /** Exported handler name; default "handler". */
  exportName?: string;
}

export interface RunRequest {
  type: 'run';
  taskId: number;
  code: FunctionCode;
  params: Record<string, unknown>;
  context: InvocationContext;
}

/** What a function sees about its own invocation (OpenWhisk's __OW_* variables, Lambda's context). */
export interface InvocationContext {
  activationId: string;
  functionName: string;
  /** Epoch ms after which the platform kills the invocation. */
  deadline: number;
}

export type RunReply =
  | { type: 'ready' }
  | {
      type: 'done';
      taskId: number;
      /** true if this run had to load the function's code first. */
      coldStart: boolean;
      /** 'ok': result is the function's answer (an object). 'error': the function threw / returned a non-object. */
      outcome: 'ok' | 'application error' | 'developer error';
      result: Record<string, unknown>;
    };

/** The signature every platform-neutral FedKeeper function has. */
export type FunctionHandler = (params: Record<string, unknown>, context: InvocationContext) => Promise<Record<string, unknown>>;
