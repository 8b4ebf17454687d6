/**
 * The container model shared by the `local` provider and the local platforms of fabric/: an action's code runs in
 * runtime processes ("containers"). A ContainerPool starts, reuses (warm), bounds (by memory) and kills them; the
 * kind of container (container-kind.ts) says how its runtime is spoken to: the OpenWhisk action-runtime contract
 * over HTTP on 127.0.0.1 (`POST /init` once, `POST /run` per activation; the default), or Lambda's Runtime API.
 */

export interface ActionExec {
  /** 'nodejs:20' (JS source or a zip of a Node.js package) or 'blackbox' (a docker image, see below). */
  kind: string;
  /** JS source (binary false) or base64 zip (binary true). */
  code?: string;
  binary?: boolean;
  /** Name of the exported entry function; default 'main'. */
  main?: string;
  /** Docker image of a blackbox action. Locally, images are mapped to runtimes by the pool's options. */
  image?: string;
}

export interface ActionLimits {
  timeoutMs: number;
  memoryMb: number;
  /** Concurrent activations one container may run (OpenWhisk's intra-container concurrency). */
  concurrency: number;
}

export interface ContainerAction {
  /** Unique name in the pool, e.g. "guest/fl_client". */
  name: string;
  /** Changes whenever the action is updated: containers of an older version are never reused. */
  version: string;
  exec: ActionExec;
  limits: ActionLimits;
  /** Environment of the runtime process (on top of the pool's). */
  env?: Record<string, string>;
}

export interface RunMeta {
  activationId: string;
  namespace: string;
  actionName: string;
  transactionId?: string;
  apiKey?: string;
}

export type ContainerOutcome = 'success' | 'application error' | 'developer error' | 'timed out';

export interface ContainerRunResult {
  status: ContainerOutcome;
  /** The action's result object; `{error: …}` when it failed. */
  result: Record<string, unknown>;
  /** Epoch ms: when the activation started running in a container (after any wait for one) and ended. */
  startTime: number;
  endTime: number;
  /** ms spent waiting for a container (queue + container start). */
  waitTimeMs: number;
  /** ms of /init (0 on a warm start). */
  initTimeMs: number;
  coldStart: boolean;
  containerId: string;
  logs: string[];
  /**
   * The answer as JSON text, for kinds whose answers are any JSON document (a Lambda function's response, or its
   * error document); `result` then holds it when it is a JSON object. Absent for OpenWhisk containers.
   */
  payload?: string;
  /** Peak memory of the container's runtime process so far, MB, where the platform can tell (Lambda's REPORT). */
  memoryUsedMb?: number;
}

/** A local cluster's character: lets one fabric mix a fast "cloud" and a slow "edge" cluster. */
export interface ClusterProfile {
  /** Extra delay before a new container answers /init, ms. */
  coldStartDelayMs: number;
  /** ≥ 1: an activation takes this many times its real duration (the container is held for the extra time). */
  speedFactor: number;
  /**
   * Probability in [0, 1] that an activation's container crashes while running it: the runtime process is
   * SIGKILLed once the /run request is on its way, the activation is a 'developer error' and the container is gone.
   */
  failureProbability: number;
  /**
   * Probability in [0, 1] that the action answers with an application error: the runtime process, told so in the
   * /run request, answers `{error: "injected fault"}` instead of calling the action's main (no side effects), through
   * its ordinary /run path. Default 0.
   */
  errorProbability?: number;
  /**
   * Probability in [0, 1] that the activation runs past its time limit: the runtime process, told so in the /run
   * request, holds the activation without calling main and never answers, so the pool's time limit fires, kills the
   * container and reports 'timed out'. Only drawn for actions with a finite time limit. Default 0.
   */
  timeoutProbability?: number;
}

/** Faults a pool's profile has injected so far (see ClusterProfile). */
export interface InjectedFaults {
  /** Activations submitted to the pool, i.e. fault draws made. */
  activations: number;
  /** Containers crashed (failureProbability). */
  crash: number;
  /** Application errors answered (errorProbability). */
  error: number;
  /** Activations held past their time limit (timeoutProbability). */
  timeout: number;
}

/** The fault an activation gets, if any. */
export type InjectedFault = 'crash' | 'error' | 'timeout';
