/**
 * One interface for every FaaS platform. The keeper talks to platforms only through it: deploy a function, remove
 * it, invoke it without blocking (→ activation id), and read activations back by id.
 */
import type { ActivationStatus } from '../store/types.js';

export interface FunctionSpec {
  /** Function name on the platform (e.g. fl_client). */
  name: string;
  /** Per-invocation time limit, ms. */
  timeoutMs: number;
  memoryMb: number;
  /** Platform-specific settings from the config, passed through. */
  settings: Record<string, unknown>;
  /** The function's package for this platform (src/packaging), for FedKeeper's own functions. */
  artifact?: FunctionArtifact;
}

/** A built function package: the zip a platform is given, and what identifies it. */
export interface FunctionArtifact {
  /** The zip on disk. */
  file: string;
  sha256: string;
  size: number;
  /** Package target: openwhisk (zip action, export `main`) or gcf (source zip, entry point fedkeeper_http). */
  target: string;
}

export interface Activation {
  activationId: string;
  functionName: string;
  status: ActivationStatus;
  startTime: number; // epoch ms (when the platform started running it)
  endTime: number | null;
  /** The function's answer when status is success; `{error}` otherwise. */
  result?: Record<string, unknown>;
  coldStart: boolean;
  logs?: string[];
  /** The platform instance that served it, where the platform tells (local GCF: its instance id, e.g. `i3`). */
  instance?: string;
}

export interface Provider {
  /** Platform kind: local, openwhisk, google … */
  readonly platform: string;
  /** Cluster name from the config. */
  readonly cluster: string;

  /**
   * Throws (exit 2) if the platform would refuse this function's settings; called before anything is deployed. May
   * instead adjust the spec into the platform's ranges (when the config asks for that), returning a warning per change.
   */
  validate?(spec: FunctionSpec): string[] | void;
  deploy(spec: FunctionSpec): Promise<void>;
  remove(name: string): Promise<void>;
  list(): Promise<string[]>;
  /** Starts an invocation and returns its activation id at once. */
  invoke(name: string, params: Record<string, unknown>): Promise<string>;
  /** Current state of an activation; undefined if the platform does not know the id. */
  activation(activationId: string): Promise<Activation | undefined>;
  /** The package a deployed function runs (its sha256 and size), if the platform records it. */
  deployedArtifact?(name: string): Promise<{ sha256: string; size: number } | undefined>;
  /** Faults the platform injected on purpose (local test clusters), if it reports them. */
  faults?(): Promise<Record<string, number> | undefined>;
  /** Releases connections and processes held by this provider object (deployed functions stay deployed). */
  close(): Promise<void>;
}

/** A platform answered that a function does not exist, credentials were refused, etc.: the user must fix input. */
export class ProviderError extends Error {
  override name = 'ProviderError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
    /** The call may succeed if repeated: HTTP 429, a 5xx, or a network error (refused, reset, timed out). */
    readonly transient = false,
  ) {
    super(message);
  }
}
