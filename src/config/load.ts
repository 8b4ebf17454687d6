/**
 * Reading a config file: YAML (with line numbers for errors) → `${ENV}` substitution → schema → FedKeeperConfig.
 * Every failure is a one-line ConfigError prefixed `config <source>: `.
 */
import { readFile } from 'node:fs/promises';
import { isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import { ConfigError, describeValue, formatPath, type ConfigPath } from './errors.js';
import { substituteEnv } from './env.js';
import { problemsFromZod, type Problem } from './issues.js';
import { isSensitivePath, rememberEnvPaths } from './redact.js';
import { FedKeeperConfigSchema } from './schema.js';
import type { FedKeeperConfig } from './types.js';

/** Line of the node at `path`, or of its nearest ancestor present in the document. */
function lineOf(doc: Document, lines: LineCounter, path: ConfigPath): number | undefined {
  for (let p = [...path]; p.length > 0; p = p.slice(0, -1)) {
    const node = doc.getIn(p, true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && Array.isArray(node.range)) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}

function fail(source: string, problems: Problem[], doc: Document, lines: LineCounter): never {
  const render = (p: Problem): string => {
    const line = lineOf(doc, lines, p.path);
    return `config ${source}: ${formatPath(p.path)}: ${p.message}${line !== undefined ? ` (line ${line})` : ''}`;
  };
  const [first, ...rest] = problems.map(render);
  throw new ConfigError(first!, rest);
}

/** Parse and validate config text; `source` names it in messages (usually the file path). */
export function parseConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): FedKeeperConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const { line, col } = lines.linePos(syntax.pos[0]);
    const what = syntax.message.split('\n')[0]!.trim();
    throw new ConfigError(`config ${source}: YAML syntax error at line ${line}, column ${col}: ${what}`);
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new ConfigError(
      `config ${source}: the file is empty; expected a YAML mapping with at least name and ` +
        'scenarios.federated_learning.clients_info (see examples/)',
    );
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(
      `config ${source}: (top level): expected a mapping (name, providers, scenarios …), found ${describeValue(raw)}`,
    );
  }
  // `version: 0.1` is a YAML number; keep what was written (so 1.10 stays "1.10").
  const versionNode = doc.get('version', true);
  if (isScalar(versionNode) && typeof versionNode.value === 'number' && versionNode.range) {
    (raw as Record<string, unknown>).version = text.slice(versionNode.range[0], versionNode.range[1]).trim();
  }

  const { value, envPaths, problems } = substituteEnv(raw, env);
  if (problems.length > 0) fail(source, problems, doc, lines);

  const parsed = FedKeeperConfigSchema.safeParse(value);
  if (!parsed.success) {
    const sensitive = (p: ConfigPath) => isSensitivePath(p, envPaths);
    fail(source, problemsFromZod(parsed.error.issues, value, sensitive), doc, lines);
  }
  rememberEnvPaths(parsed.data, envPaths);
  return parsed.data;
}

/** Read, parse and validate a config file. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<FedKeeperConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`config ${file}: file not found`);
    if (code === 'EISDIR') throw new ConfigError(`config ${file}: is a directory, expected a YAML file`);
    throw new ConfigError(`config ${file}: cannot read the file (${code ?? (err as Error).message})`);
  }
  return parseConfig(text, file, env);
}
