/**
 * The Google Cloud Functions provider (platform `google`): one entry point that reads a cluster's settings
 * (`providers.google.<cluster>`) and gives the local-mode provider (the real functions-framework on this
 * machine) or the cloud-mode provider (Cloud Functions v2 through Google's client library).
 *
 *   providers:
 *     google:
 *       gcf: {}                                   # local mode (the default without project_id)
 *       gcp: {project_id: my-proj, region: europe-west1, credentials: ./sa-key.json}
 */
import type { IdentityTokenSource } from './google-cloud-auth.js';
import { GoogleCloudProvider } from './google-cloud.js';
import { parseGoogleCluster } from './google-config.js';
import { GoogleLocalProvider } from './google-local.js';
import { flFunctionSource, type FunctionSource } from './google-source.js';
import type { Provider } from './types.js';

export { GoogleCloudProvider } from './google-cloud.js';
export { GoogleLocalProvider } from './google-local.js';
export type { GoogleActivation } from './google-invoke.js';

export interface GoogleProviderOptions {
  cluster: string;
  /** The cluster's block from the config, as given (`providers.google.<cluster>`). */
  settings: Record<string, unknown>;
  /** Local mode: where deployment records, function sources and instance logs live (e.g. `.fedkeeper/google`). */
  stateDir: string;
  /** Code for functions deployed without a package (tests, benchmarks): OpenWhisk-style sources by name. */
  source?: FunctionSource;
  /** Local mode: extra environment for every instance. */
  env?: Record<string, string>;
  /** Cloud mode: an API auth client (overrides credentials/access_token) and an identity-token source. */
  authClient?: unknown;
  idToken?: IdentityTokenSource;
}

export function createGoogleProvider(o: GoogleProviderOptions): Provider {
  const settings = parseGoogleCluster(o.cluster, o.settings);
  const source = o.source ?? flFunctionSource;
  if (settings.mode === 'local') {
    return new GoogleLocalProvider({
      cluster: o.cluster,
      settings,
      stateDir: o.stateDir,
      source,
      ...(o.env ? { env: o.env } : {}),
    });
  }
  return new GoogleCloudProvider({
    cluster: o.cluster,
    settings,
    source,
    ...(o.authClient !== undefined ? { authClient: o.authClient } : {}),
    ...(o.idToken ? { idToken: o.idToken } : {}),
  });
}
