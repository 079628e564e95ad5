import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { openDataDir } from '../datadir/datadir.js';
import { systemClock, type Clock } from '../shared/clock.js';
import { GatehouseError, usageError } from '../shared/errors.js';
import { openStore } from '../store/open.js';
import { witnessChanges, witnessPath } from '../audit/witness.js';
import { signer } from '../recorder/recorder.js';
import type { Command, CommandContext, Opened, Options } from './command.js';
import { oneLine, terminalSafeJson, writeText } from './escape.js';
import { commands as access } from './commands/access.js';
import { commands as audit } from './commands/audit.js';
import { commands as ca } from './commands/ca.js';
import { commands as grant } from './commands/grant.js';
import { commands as group } from './commands/group.js';
import { commands as host } from './commands/host.js';
import { commands as key } from './commands/key.js';
import { commands as knownHosts } from './commands/knownhosts.js';
import { commands as serve } from './commands/serve.js';
import { commands as sessions } from './commands/sessions.js';
import { commands as sessionFile } from './commands/sessionfile.js';
import { commands as user } from './commands/user.js';
import { commands as verify } from './commands/verify.js';
import { commands as backup } from './commands/backup.js';
import { commands as retention } from './commands/retention.js';
import { commands as request } from './commands/request.js';
import { commands as fleet } from './commands/fleet.js';
import { commands as nodes } from './commands/nodes.js';
import { commands as migrate } from './commands/migrate.js';

export const COMMANDS: Command[] = [...serve, ...user, ...group, ...host, ...grant, ...access, ...sessions, ...sessionFile, ...audit, ...verify, ...key, ...ca, ...knownHosts, ...backup, ...retention, ...request, ...nodes, ...fleet, ...migrate];

const GLOBAL_OPTIONS: Options = {
  data: { type: 'string' },
  config: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

function usageLine(c: Command): string {
  const json = c.json ? ' [--json]' : '';
  return `gatehouse ${c.names.join(' ')}${c.args ? ` ${c.args}` : ''}${json}`;
}

function overview(prefix: string[]): string {
  const matching = COMMANDS.filter((c) => prefix.every((w, i) => c.names[i] === w));
  const width = Math.max(...matching.map((c) => c.names.join(' ').length));
  return [
    'gatehouse: an SSH bastion with key + TOTP, per-host grants, recorded sessions.',
    '',
    'usage: gatehouse COMMAND [ARGS] [--data DIR] [--config FILE] [--json]',
    '',
    ...matching.map((c) => `  ${c.names.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --data DIR (or GATEHOUSE_DATA; default ./data) and --help.',
    'Exit status: 0 ok, 1 failure, 2 usage error.',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return [`usage: ${usageLine(c)}`, '', c.summary, ...(c.help ? ['', c.help] : []),
    '', 'common options: --data DIR, --config FILE, --help'].join('\n');
}

function leadingWords(argv: string[]): string[] {
  const words: string[] = [];
  for (const a of argv) {
    if (a.startsWith('-')) break;
    words.push(a);
  }
  return words;
}

/** The command selected by the leading words of argv: the longest match wins. */
function findCommand(argv: string[]): Command | undefined {
  const words = leadingWords(argv);
  let best: Command | undefined;
  for (const c of COMMANDS) {
    if (c.names.length <= words.length && c.names.every((w, i) => words[i] === w)) {
      if (!best || c.names.length > best.names.length) best = c;
    }
  }
  return best;
}

export interface RunOptions {
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadStream;
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
}

/** Run one CLI invocation; returns the exit status. */
export async function run(argv: string[], opts: RunOptions = {}): Promise<number> {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const env = opts.env ?? process.env;
  const cmd = findCommand(argv);
  if (!cmd) {
    const words = leadingWords(argv);
    const isHelp = argv.length === 0 || argv.includes('--help') || argv.includes('-h') || argv[0] === 'help';
    const group = words.length > 0 && COMMANDS.some((c) => c.names[0] === words[0]) ? [words[0]!] : [];
    if (isHelp || (group.length > 0 && words.length === 1)) {
      writeText(isHelp ? stdout : stderr, overview(group) + '\n');
      return isHelp ? 0 : 2;
    }
    writeText(stderr, `gatehouse: unknown command "${oneLine(words.join(' '))}"\nhint: gatehouse --help lists the commands\n`);
    return 2;
  }

  let store: Opened['store'] | undefined;
  // A command that appends audit rows leaves a signed checkpoint in the witness before it exits.
  let checkpointAtClose: (() => Promise<void>) | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv.slice(cmd.names.length), options: { ...GLOBAL_OPTIONS, ...(cmd.options ?? {}) },
        allowPositionals: true, strict: true,
      });
    } catch (err) {
      throw usageError((err as Error).message.split('\n')[0]!, `usage: ${usageLine(cmd)}`);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      writeText(stdout, commandHelp(cmd) + '\n');
      return 0;
    }
    if (positionals.length < cmd.positionals.min || positionals.length > cmd.positionals.max) {
      throw usageError(positionals.length < cmd.positionals.min ? 'missing arguments' : `unexpected argument "${positionals[cmd.positionals.max]}"`,
        `usage: ${usageLine(cmd)}`);
    }
    const flags = { config: values.config as string | undefined, data: values.data as string | undefined };
    let config: Config | undefined;
    const getConfig = () => (config ??= loadConfig(flags, env));
    let opened: Opened | undefined;
    const ctx: CommandContext = {
      clock: opts.clock ?? systemClock,
      actor: `cli:${os.userInfo().username}`,
      json: values.json === true,
      stdin: opts.stdin ?? process.stdin,
      stdout,
      stderr,
      config: getConfig,
      async open() {
        if (opened) return opened;
        const cfg = getConfig();
        const dataDir = openDataDir(cfg.dataDir);
        store = await openStore({ config: cfg, dataDir, clock: ctx.clock });
        checkpointAtClose = await witnessChanges({ file: witnessPath(cfg, dataDir), store, sign: signer(dataDir.hostKey), clock: ctx.clock });
        opened = { config: cfg, dataDir, store };
        return opened;
      },
    };
    const out = await cmd.handler(ctx, values, positionals);
    if (ctx.json && out.json !== undefined) stdout.write(terminalSafeJson(out.json) + '\n');
    else if (out.text !== undefined && out.text !== '') writeText(stdout, out.text + '\n');
    return out.exitCode ?? 0;
  } catch (err) {
    if (err instanceof GatehouseError) {
      writeText(stderr, `gatehouse: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      return err.exitCode;
    }
    writeText(stderr, `gatehouse: unexpected error: ${(err as Error).message ?? err}\nhint: this is a bug; the log has details when run under serve\n`);
    return 1;
  } finally {
    await checkpointAtClose?.().catch((err: unknown) => {
      writeText(stderr, `gatehouse: warning: the change is saved but no checkpoint reached the witness: ${(err as Error).message}\n`);
    });
    await store?.close();
  }
}

export async function main(argv: string[]): Promise<void> {
  // Everything gatehouse creates (database, WAL, keys, recordings) is private to the service account.
  process.umask(0o077);
  const code = await run(argv);
  process.exitCode = code;
}
