/**
 * The fields of Lambda's function requests, checked as Lambda checks them: a wrong JSON type is an
 * InvalidRequestContentException, a value out of its range an InvalidParameterValueException naming the field (in
 * AWS's validation words), and what this local platform cannot do (published versions, layers, VPCs, file systems)
 * is refused in one line rather than silently ignored.
 */
import { LambdaError } from './lambda-errors.js';

export type Json = Record<string, unknown>;

/** Environment.Variables may hold 4 KB (as JSON). */
const ENVIRONMENT_BYTES = 4096;
const ROLE = /^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role\/?[a-zA-Z_0-9+=,.@\-/]+$/;
const VARIABLE = /^[a-zA-Z]([a-zA-Z0-9_])+$/;

/** Variables Lambda sets itself: a function may not. */
const RESERVED_VARIABLES = new Set([
  '_HANDLER',
  '_X_AMZN_TRACE_ID',
  'AWS_DEFAULT_REGION',
  'AWS_REGION',
  'AWS_EXECUTION_ENV',
  'AWS_LAMBDA_FUNCTION_NAME',
  'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
  'AWS_LAMBDA_FUNCTION_VERSION',
  'AWS_LAMBDA_INITIALIZATION_TYPE',
  'AWS_LAMBDA_LOG_GROUP_NAME',
  'AWS_LAMBDA_LOG_STREAM_NAME',
  'AWS_ACCESS_KEY',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_LAMBDA_RUNTIME_API',
  'LAMBDA_TASK_ROOT',
  'LAMBDA_RUNTIME_DIR',
]);

export function object(v: unknown, field?: string): Json {
  if (v === undefined && field === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw LambdaError.badContent(`Could not parse request body into json: ${field ?? 'the body'} must be a JSON object`);
  return v as Json;
}

export function str(b: Json, key: string, required = false): string | undefined {
  const v = b[key];
  if (v === undefined || v === null) {
    if (required) throw LambdaError.invalid(`${key} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw LambdaError.badContent(`Could not parse request body into json: ${key} must be a string`);
  return v;
}

export function int(b: Json, key: string): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw LambdaError.badContent(`Could not parse request body into json: ${key} must be an integer`);
  return v;
}

export function role(r: string): string {
  if (!ROLE.test(r)) throw LambdaError.invalid('The role defined for the function cannot be assumed by Lambda.');
  return r;
}

export function handler(h: string): string {
  if (h.length > 128) throw LambdaError.outOfRange('handler', h, 'Member must have length less than or equal to 128');
  if (!/^[^\s]+$/.test(h)) throw LambdaError.outOfRange('handler', h, 'Member must satisfy regular expression pattern: [^\\s]+');
  return h;
}

export function description(d: string): string {
  if (d.length > 256) throw LambdaError.outOfRange('description', `${d.slice(0, 32)}…`, 'Member must have length less than or equal to 256');
  return d;
}

export function architectures(v: unknown): string[] {
  if (v === undefined || v === null) return ['x86_64'];
  if (!Array.isArray(v) || v.length !== 1 || (v[0] !== 'x86_64' && v[0] !== 'arm64')) {
    throw LambdaError.outOfRange('architectures', JSON.stringify(v), 'Member must have length less than or equal to 1 and each member must be x86_64 or arm64');
  }
  return [v[0] as string];
}

export function ephemeral(v: unknown): number {
  if (v === undefined || v === null) return 512;
  const size = int(object(v, 'EphemeralStorage'), 'Size') ?? 512;
  if (size < 512 || size > 10_240) throw LambdaError.outOfRange('ephemeralStorage.size', size, 'Member must have value between 512 and 10240');
  return size;
}

export function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = object(v, field);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) {
    if (typeof val !== 'string') throw LambdaError.badContent(`Could not parse request body into json: ${field}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

/** Environment.Variables, checked as Lambda checks them; undefined when the function has none. */
export function environment(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  const vars = stringMap(object(v, 'Environment').Variables, 'Environment.Variables');
  const bad = Object.keys(vars).filter((k) => !VARIABLE.test(k));
  if (bad.length > 0) throw LambdaError.outOfRange('environment.variables', bad.join(', '), 'Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+');
  const reserved = Object.keys(vars).filter((k) => RESERVED_VARIABLES.has(k));
  if (reserved.length > 0) {
    throw LambdaError.invalid(
      `Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: ${reserved.join(', ')}`,
    );
  }
  const measured = JSON.stringify(vars);
  if (Buffer.byteLength(measured) > ENVIRONMENT_BYTES) {
    throw LambdaError.invalid(`Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: ${measured.slice(0, 200)}`);
  }
  return vars;
}

/** What this platform cannot do, refused in one line rather than silently ignored. */
export function rejectUnsupported(b: Json): void {
  if (b.Publish === true) throw LambdaError.invalid('Publish: this local Lambda platform keeps only $LATEST (no published versions); deploy without Publish');
  if (Array.isArray(b.Layers) && b.Layers.length > 0) throw LambdaError.invalid('Layers are not supported by this local Lambda platform: put the code in the deployment package');
  const vpc = b.VpcConfig as { SubnetIds?: unknown[] } | undefined;
  if (vpc && Array.isArray(vpc.SubnetIds) && vpc.SubnetIds.length > 0) throw LambdaError.invalid('VpcConfig is not supported by this local Lambda platform');
  if (Array.isArray(b.FileSystemConfigs) && b.FileSystemConfigs.length > 0) throw LambdaError.invalid('FileSystemConfigs are not supported by this local Lambda platform');
}
