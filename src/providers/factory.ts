/**
 * A provider for a cluster from its (resolved) config block, for code that runs away from the keeper: the relay
 * function reaches a client's cluster with it. Local clusters are not reachable this way (their pool lives in the
 * keeper's process): clients there read the store directly.
 */
import { createGoogleProvider } from './google.js';
import { LambdaProvider } from './lambda.js';
import { OpenWhiskProvider, openWhiskOptions } from './openwhisk.js';
import { ProviderError, type Provider } from './types.js';

export function providerFor(platform: string, cluster: string, settings: Record<string, unknown>): Provider {
  switch (platform) {
    case 'openwhisk':
      return new OpenWhiskProvider(openWhiskOptions(cluster, settings));
    case 'lambda':
      return new LambdaProvider({ cluster, settings });
    case 'google': {
      const { state_dir, ...block } = settings;
      return createGoogleProvider({ cluster, settings: block, stateDir: String(state_dir ?? '.fedkeeper/google') });
    }
    default:
      throw new ProviderError(`${platform} cluster ${cluster}: cannot be reached through the relay; use store_access: direct`, 2);
  }
}
