/**
 * What ContainerPool needs of a kind of container, so that one pool — warm reuse, the memory bound, per-container
 * concurrency, the FIFO queue, time limits, the cluster profile and its injected faults — runs every kind:
 *
 *  - OpenWhisk action containers (container.ts): a runtime process serving `POST /init` and `POST /run`;
 *  - Lambda execution environments (lambda-environment.ts): a runtime process that polls Lambda's Runtime API,
 *    served to it by the environment.
 *
 * A kind prepares an action (or says why it cannot run), and makes containers for it. A container starts, loads the
 * function once (`init`), runs one activation at a time per concurrency slot (`run`), and phrases, in its kind's own
 * words, the endings its runtime did not answer itself (a time limit, a crash).
 */
import type http from 'node:http';
import type { ActivationLogs } from './activation-logs.js';
import type { ContainerAction, ContainerOutcome, RunMeta } from './container-types.js';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The container could not do what was asked: it did not start, the connection broke, its runtime answered nonsense,
 * or its function failed to initialise. `answer`, when given, is what the runtime itself reported (e.g. Lambda's
 * init error document), to be returned to the caller as the activation's result.
 */
export class ContainerFault extends Error {
  override name = 'ContainerFault';
  constructor(
    message: string,
    readonly answer?: { result: Record<string, unknown>; payload?: string },
  ) {
    super(message);
  }
}

/** The request itself cannot be sent (its payload is not JSON): nothing reached the container. */
export class PayloadError extends Error {
  override name = 'PayloadError';
}

/** One activation, as the pool hands it to a container. */
export interface RunRequest<I> {
  /** The activation's input: OpenWhisk parameters, or a Lambda invocation. */
  input: I;
  meta: RunMeta;
  /** Epoch ms at which the activation's time limit ends (Infinity: none). */
  deadline: number;
  /**
   * An injected fault the runtime itself must act out (only a runtime started with fault injection honours it):
   * 'error' — answer an application error without calling the function; 'timeout' — hold the activation and never
   * answer.
   */
  fault?: 'error' | 'timeout';
}

/** What a container's runtime answered. */
export interface RunAnswer {
  /** 'developer error': an answer that is not usable (the container is then never reused). */
  status: Exclude<ContainerOutcome, 'timed out'>;
  result: Record<string, unknown>;
  /** The answer as JSON text, for kinds whose answers are any JSON document (Lambda). */
  payload?: string;
}

/** What an ending the runtime did not answer becomes (see PoolContainer.timedOut / crashed). */
export type UnansweredResult = Pick<RunAnswer, 'result' | 'payload'>;

export interface PoolContainer<I> {
  readonly id: string;
  /** Action name + version: which runs may reuse this container. */
  readonly key: string;
  readonly memoryMb: number;
  /** Activations it may run at once. */
  readonly concurrency: number;
  readonly logs: ActivationLogs;
  /** Resolves once its process has ended (or, if it never started one, once it is stopped). */
  readonly exited: Promise<ExitInfo>;
  readonly alive: boolean;
  state: 'starting' | 'ready' | 'dead';
  /** Runs assigned to it (waiting for it to start, or running). */
  active: number;
  lastUsed: number;
  idleTimer: NodeJS.Timeout | undefined;
  /** Set by the pool once it has started the container: resolves with the ms its initialisation took. */
  ready: Promise<number>;
  /** Resolves once the container can be initialised. */
  started(): Promise<void>;
  /**
   * Loads the function (after the profile's cold-start delay). `first` is the activation the container is started
   * for. Rejects with a ContainerFault when the function cannot be loaded.
   */
  init(timeoutMs: number, first: RunMeta): Promise<void>;
  /** After a successful init; throws a ContainerFault if the container was killed meanwhile. */
  markReady(): void;
  /**
   * Runs one activation. onSent: called once the activation is on its way to the runtime. Rejects with a
   * ContainerFault when the runtime broke (crashed, cut the connection), a PayloadError when nothing was sent.
   */
  run(request: RunRequest<I>, onSent?: () => void): Promise<RunAnswer>;
  /** SIGKILL: a real, immediate death. Never reused afterwards. */
  kill(): void;
  /** How the process ended, waiting up to ms for it to end; undefined if it is still running. */
  exitInfo(ms: number): Promise<ExitInfo | undefined>;
  /** The result of an activation that outlived its time limit (its container is killed). */
  timedOut(request: RunRequest<I>, timeoutMs: number): UnansweredResult;
  /** The result of an activation whose runtime died under it: exit (when known), else why; note: appended. */
  crashed(request: RunRequest<I>, exit: ExitInfo | undefined, why: string, note: string): UnansweredResult;
  /** Peak memory of the runtime process so far, MB, where the platform can tell. */
  peakMemoryMb?(): number | undefined;
}

/** What the pool gives a kind to make a container. */
export interface ContainerSetup {
  id: string;
  key: string;
  /** The pool's base environment (e.g. FEDKEEPER_* knobs), on top of which each kind builds its process's. */
  env: Record<string, string>;
  /** Shared keep-alive agent for kinds that call their runtime over HTTP. */
  agent: http.Agent;
  /** The pool's profile injects errors or timeouts: start the runtime so that it honours RunRequest.fault. */
  faultInjection: boolean;
  /** The pool's label, for messages and process titles. */
  label: string;
}

export type ContainerFactory<I> = (setup: ContainerSetup) => PoolContainer<I>;

/** A kind of container: A is the actions it runs, I the input of one activation. */
export interface ContainerKind<A extends ContainerAction, I> {
  /** Makes containers for action, or says (a developer error, in one line) why this kind cannot run it. */
  prepare(action: A, label: string): ContainerFactory<I> | string;
}
