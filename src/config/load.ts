import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as Yaml from 'yaml';
import type { z } from 'zod';
import { GatehouseError } from '../shared/errors.js';
import { configSchema, type Config } from './schema.js';

/** Values given on the command line; each one overrides the environment, the file and the default. */
export interface ConfigFlags {
  config?: string | undefined;
  data?: string | undefined;
  sshListen?: string | undefined;
  webListen?: string | undefined;
}

/** Environment variables we read, and the config key each one sets. */
const ENV_KEYS: ReadonlyArray<[string, string[]]> = [
  ['GATEHOUSE_DATA', ['dataDir']],
  ['GATEHOUSE_SSH_LISTEN', ['ssh', 'listen']],
  ['GATEHOUSE_WEB_LISTEN', ['web', 'listen']],
  ['GATEHOUSE_LOG_LEVEL', ['log', 'level']],
  ['GATEHOUSE_STORE', ['store']],
  ['GATEHOUSE_NODE_NAME', ['node', 'name']],
];

type Tree = Record<string, unknown>;

function setPath(tree: Tree, keys: string[], value: unknown): void {
  let node = tree;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Tree;
  }
  node[keys[keys.length - 1]!] = value;
}

function configError(message: string, hint?: string): GatehouseError {
  return new GatehouseError('GH_CONFIG', message, hint === undefined ? {} : { hint });
}

function readConfigFile(file: string): Tree {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      'check the path given with --config or GATEHOUSE_CONFIG');
  }
  // yaml loads only when there is a file to parse: it costs each CLI run that has none start-up time.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof Yaml;
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw configError(`config file ${file} is not valid YAML: ${first.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw configError(`config file ${file} must be a YAML mapping of keys (see config/gatehouse.example.yaml)`);
  }
  return value as Tree;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const where = key ? `${key}.` : '';
    return `unknown key ${issue.keys.map((k) => `"${where}${k}"`).join(', ')}`;
  }
  return `${key || '(top level)'}: ${issue.message}`;
}

/**
 * Resolve the effective config: flag > environment > config file > default. Validated strictly,
 * paths resolved (relative to the config file for file values, to the cwd for flags and env), frozen.
 */
export function loadConfig(flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const file = flags.config ?? env.GATEHOUSE_CONFIG;
  const tree: Tree = file ? readConfigFile(file) : {};
  const fileDir = file ? path.dirname(path.resolve(file)) : process.cwd();
  if (typeof tree.dataDir === 'string') tree.dataDir = path.resolve(fileDir, tree.dataDir);

  for (const [name, keys] of ENV_KEYS) {
    const v = env[name];
    if (v !== undefined && v !== '') setPath(tree, keys, keys[0] === 'dataDir' ? path.resolve(v) : v);
  }
  if (flags.data !== undefined) tree.dataDir = path.resolve(flags.data);
  if (flags.sshListen !== undefined) setPath(tree, ['ssh', 'listen'], flags.sshListen);
  if (flags.webListen !== undefined) setPath(tree, ['web', 'listen'], flags.webListen);

  const parsed = configSchema.safeParse(tree);
  if (!parsed.success) {
    const where = file ? ` (${file})` : '';
    const lines = parsed.error.issues.map(describeIssue);
    throw configError(`invalid configuration${where}: ${lines.join('; ')}`,
      'every key is documented in config/gatehouse.example.yaml');
  }
  const cfg = parsed.data;
  cfg.dataDir = path.resolve(cfg.dataDir);
  if (cfg.web.tls) {
    cfg.web.tls = { cert: path.resolve(fileDir, cfg.web.tls.cert), key: path.resolve(fileDir, cfg.web.tls.key) };
  }
  return deepFreeze(cfg);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
