/**
 * The wire format of the OpenWhisk action-runtime contract, shared by the runtime process (action-runtime.ts) and
 * the pool that drives it (container.ts). Kept apart from action-runtime.ts because importing that module starts a
 * server.
 */

/** Printed on stdout and stderr after every activation, as OpenWhisk runtimes do: logs are cut per activation at it. */
export const ACTIVATION_SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX';

/** `POST /init` body. */
export interface InitBody {
  value: {
    name: string;
    /** Name of the exported entry function. */
    main: string;
    /** JS source (binary false) or a base64 zip of a Node.js package (binary true). */
    code: string;
    binary: boolean;
    /** Added to the runtime's process.env. */
    env?: Record<string, unknown>;
  };
}

/** `POST /run` body. */
export interface RunBody {
  value: Record<string, unknown>;
  namespace: string;
  action_name: string;
  activation_id: string;
  transaction_id: string;
  /** Epoch ms (a string, as OpenWhisk sends it) after which the activation is killed. */
  deadline: string;
  api_key?: string;
  /**
   * Fault injection (FedKeeper's, not OpenWhisk's): honoured only by a runtime started with FAULT_INJECTION_FLAG.
   * 'error': answer `{error: "injected fault"}` without calling main; 'timeout': never answer (the pool's time limit
   * kills the container). Outside `value`, so an action never sees it and a caller of the action cannot set it.
   */
  fedkeeper_fault?: 'error' | 'timeout';
}

/** Command-line flag (after the directory and the id) that makes a runtime honour RunBody.fedkeeper_fault. */
export const FAULT_INJECTION_FLAG = '--fault-injection';

/** The `error` of an injected application error. */
export const INJECTED_ERROR = 'injected fault';

/** IPC message a runtime process sends its parent once its server listens. */
export interface ListeningMessage {
  type: 'listening';
  port: number;
}

export const RUNTIME_ERRORS = {
  initTwice: 'Internal error. Cannot initialize the action more than once.',
  notInitialized: 'Internal error. The action was not initialized: POST /init first.',
  initFailed: 'Internal error. The action failed to initialize.',
  notDictionary: 'The action did not return a dictionary.',
} as const;
