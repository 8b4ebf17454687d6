/** Function packages: one self-contained zip per function and platform kind (see artifact.ts, bundle.ts, targets.ts). */
export { buildArtifact, exportArtifact, formatSize, WASM_FILES, type Artifact } from './artifact.js';
export { PackagingError } from './errors.js';
export { LAMBDA_HANDLER, LAMBDA_RUNTIME, PACKAGE_TARGETS, TARGETS, targetOfPlatform, type PackageTarget, type TargetSpec } from './targets.js';
