import { str, type Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['serve'], args: '[--config FILE] [--data DIR] [--ssh-listen HOST:PORT] [--web-listen HOST:PORT] [--workers N|auto]',
    summary: 'run the bastion (SIGTERM: live sessions get shutdownGrace to finish, then close cleanly)',
    help: 'Precedence: flag > environment (GATEHOUSE_DATA, GATEHOUSE_CONFIG, GATEHOUSE_SSH_LISTEN, GATEHOUSE_WEB_LISTEN, GATEHOUSE_LOG_LEVEL, GATEHOUSE_WORKERS, GATEHOUSE_NODE_NAME) > config file > default. --workers N runs a primary and N worker processes (SIGHUP: fresh workers, no session dropped).',
    options: { 'ssh-listen': { type: 'string' }, 'web-listen': { type: 'string' }, 'bench-no-recording': { type: 'boolean' }, workers: { type: 'string' } },
    positionals: { min: 0, max: 0 },
    async handler(ctx, values) {
      // The server (Fastify, the relay, the web UI) is loaded only to serve: every other command
      // starts without it, and the tests run hundreds of them.
      const { serve } = await import('../../main.js');
      await serve({
        config: str(values, 'config'), data: str(values, 'data'), sshListen: str(values, 'ssh-listen'), webListen: str(values, 'web-listen'),
        benchNoRecording: values['bench-no-recording'] === true, workers: str(values, 'workers'),
      }, ctx.stderr);
      return {};
    },
  },
];
