/**
 * The platform kinds a function package is built for. Each target says how its entry exports the handler, which
 * extra files its zip holds and how large the platform lets it be; the bundler (bundle.ts) and the zip
 * (artifact.ts) are shared by all of them, so a new platform is one more entry here.
 */
import { GCF_ENTRY_POINT } from '../functions/platform/gcf.js';

export type PackageTarget = 'openwhisk' | 'gcf' | 'lambda';

export const PACKAGE_TARGETS: readonly PackageTarget[] = ['openwhisk', 'gcf', 'lambda'];

/** A Lambda package's handler (file.export) and runtime. */
export const LAMBDA_HANDLER = 'index.handler';
export const LAMBDA_RUNTIME = 'nodejs20.x';

/** The functions-framework version Cloud Functions installs for a package (the one FedKeeper is tested against). */
export const FUNCTIONS_FRAMEWORK_VERSION = '5.0.5';

export interface TargetSpec {
  target: PackageTarget;
  /** What a user reads: the platform and runtime the package is for. */
  description: string;
  /** The wrapper module under dist/src/functions/platform/ and the function it exports. */
  wrapper: { file: string; factory: string };
  /** The name the package exports its entry under (OpenWhisk `main`, GCF entry point, Lambda `index.handler`). */
  exportName: string;
  /** package.json of the zip. */
  packageJson(functionName: string, version: string): Record<string, unknown>;
  /** The platform's default limit for this artifact, bytes. */
  maxBytes: number;
  /** Where that limit comes from, for the error that names it. */
  limitName: string;
}

const MB = 1024 * 1024;

export const TARGETS: Readonly<Record<PackageTarget, TargetSpec>> = {
  openwhisk: {
    target: 'openwhisk',
    description: 'Apache OpenWhisk nodejs:20 zip action (binary, main "main")',
    wrapper: { file: 'platform/openwhisk.js', factory: 'openwhiskMain' },
    exportName: 'main',
    packageJson: (fn, version) => ({ name: `fedkeeper-${fn.replaceAll('_', '-')}`, version, private: true, description: `FedKeeper function ${fn} (OpenWhisk nodejs:20 action)`, main: 'index.js' }),
    maxBytes: 48 * MB,
    limitName: "OpenWhisk's default action size limit (48 MB)",
  },
  gcf: {
    target: 'gcf',
    description: `Google Cloud Functions gen2 nodejs20 source zip (entry point ${GCF_ENTRY_POINT})`,
    wrapper: { file: 'platform/gcf.js', factory: 'gcfHttp' },
    exportName: GCF_ENTRY_POINT,
    packageJson: (fn, version) => ({
      name: `fedkeeper-${fn.replaceAll('_', '-')}`,
      version,
      private: true,
      description: `FedKeeper function ${fn} (Google Cloud Functions, Node.js 20)`,
      main: 'index.js',
      engines: { node: '>=20' },
      // Listed so that the Cloud Functions build installs the tested version instead of injecting its own.
      dependencies: { '@google-cloud/functions-framework': FUNCTIONS_FRAMEWORK_VERSION },
    }),
    // Cloud Functions' limit for a source archive uploaded for a deployment.
    maxBytes: 100 * MB,
    limitName: "Google Cloud Functions' source upload limit (100 MB)",
  },
  lambda: {
    target: 'lambda',
    description: 'AWS Lambda nodejs20.x zip (handler index.handler)',
    wrapper: { file: 'platform/lambda.js', factory: 'lambdaHandler' },
    exportName: 'handler',
    packageJson: (fn, version) => ({ name: `fedkeeper-${fn.replaceAll('_', '-')}`, version, private: true, description: `FedKeeper function ${fn} (AWS Lambda, Node.js 20)`, main: 'index.js' }),
    // Lambda's limit for a zip uploaded directly with CreateFunction/UpdateFunctionCode (250 MB unzipped).
    maxBytes: 50 * MB,
    limitName: "Lambda's direct upload limit (50 MB zipped)",
  },
};

/** The package target a provider's platform deploys (the `local` provider runs OpenWhisk actions). */
export function targetOfPlatform(platform: string): PackageTarget | undefined {
  switch (platform) {
    case 'local':
    case 'openwhisk':
      return 'openwhisk';
    case 'google':
      return 'gcf';
    case 'lambda':
      return 'lambda';
    default:
      return undefined;
  }
}
