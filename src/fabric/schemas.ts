/**
 * zod schemas of the OpenWhisk REST API's bodies, written from its swagger (apiv1swagger.json, `definitions`).
 * The server parses `PUT …/actions/NAME` bodies with `ActionPutSchema`; the tests check every response body against
 * the others. Where this platform knowingly departs from the swagger, the schema says so in a comment.
 */
import { z } from 'zod';

/** `ActionExec.kind` enum of the swagger (which kinds this cluster can run is decided in action-store.ts). */
export const SWAGGER_KINDS = [
  'blackbox', 'java:8', 'java:default', 'nodejs:16', 'nodejs:18', 'nodejs:20', 'nodejs:default', 'php:8.1',
  'php:default', 'python:3.10', 'python:3.11', 'python:default', 'ruby:2.5', 'ruby:default', 'go:1.20', 'go:default',
  'sequence', 'swift:5.3', 'swift:5.7', 'swift:default', 'dotnet:3.1', 'dotnet:6.0', 'dotnet:default', 'rust:1.34',
  'rust:default',
] as const;

const int = z.number().int();

export const KeyValueSchema = z.object({ key: z.string(), value: z.unknown() });

export const ActionLimitsSchema = z.object({
  timeout: int.optional(),
  memory: int.optional(),
  logs: int.optional(),
  concurrency: int.optional(),
  instances: int.optional(),
});

export const ActionExecSchema = z.object({
  kind: z.enum(SWAGGER_KINDS).optional(),
  code: z.string().optional(),
  image: z.string().optional(),
  main: z.string().optional(),
  /** "ignored when creating or updating an action": the server detects a base64 zip itself. */
  binary: z.boolean().optional(),
  components: z.array(z.string()).optional(),
});

export const ActionExecMetaSchema = z.object({ binary: z.boolean().optional() });

/** What a PUT body may hold (the controller's WhiskActionPut: `namespace` and `name`, if sent, are ignored). */
export const ActionPutSchema = z.object({
  version: z.string().regex(/^\d+(\.\d+){0,2}$/, 'bad semantic version').optional(),
  publish: z.boolean().optional(),
  exec: ActionExecSchema.optional(),
  annotations: z.array(KeyValueSchema).optional(),
  delAnnotations: z.array(z.string()).optional(),
  parameters: z.array(KeyValueSchema).optional(),
  limits: ActionLimitsSchema.optional(),
});
export type ActionPut = z.infer<typeof ActionPutSchema>;

export const ActionSchema = z.object({
  namespace: z.string().min(1),
  name: z.string().min(1),
  version: z.string().min(1),
  publish: z.boolean(),
  exec: ActionExecSchema,
  annotations: z.array(KeyValueSchema).optional(),
  parameters: z.array(KeyValueSchema).optional(),
  limits: ActionLimitsSchema,
  updated: int.optional(),
});

/** An element of `GET …/actions`. */
export const ActionMetaSchema = z.object({
  namespace: z.string().min(1),
  name: z.string().min(1),
  version: z.string().min(1),
  publish: z.boolean(),
  exec: ActionExecMetaSchema,
  annotations: z.array(KeyValueSchema).optional(),
  limits: ActionLimitsSchema,
  updated: int.optional(),
});

/**
 * The swagger's status-code enum is [0, 1, 2]; OpenWhisk itself also records 3 (whisk internal error), which this
 * platform uses when its invoker fails, so 3 is allowed here. The controller sends `statusCode` only in the brief
 * records of `GET …/activations`: a full activation and a result carry `status` and `success` instead.
 */
const StatusCodeSchema = z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]);

/** `response` of an activation, and the body of `…/activations/ID/result`. */
export const ActivationResultSchema = z.object({
  status: z.string().optional(),
  result: z.unknown(),
  success: z.boolean().optional(),
  size: int.optional(),
});

export const ActivationSchema = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  publish: z.boolean(),
  annotations: z.array(KeyValueSchema).optional(),
  subject: z.string(),
  activationId: z.string(),
  start: int,
  end: int.optional(),
  duration: int.optional(),
  response: ActivationResultSchema,
  logs: z.array(z.string()),
  cause: z.string().optional(),
  statusCode: StatusCodeSchema.optional(),
});
export type ActivationRecord = z.infer<typeof ActivationSchema>;

/** An element of `GET …/activations` without `docs=true`. */
export const ActivationBriefSchema = z.object({
  namespace: z.string(),
  name: z.string(),
  version: z.string(),
  publish: z.boolean(),
  annotations: z.array(KeyValueSchema).optional(),
  activationId: z.string(),
  start: int,
  end: int.optional(),
  duration: int.optional(),
  cause: z.string().optional(),
  statusCode: StatusCodeSchema.optional(),
});

export const ActivationIdSchema = z.object({ activationId: z.string() });
export const ActivationLogsSchema = z.object({ logs: z.array(z.string()).optional() });
export const ErrorMessageSchema = z.object({ error: z.string(), code: z.string().optional() });

/** One line per problem, `path: message`, for a 400 body. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : 'body'}: ${i.message}`)
    .join('\n');
}
