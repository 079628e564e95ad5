import type { Command } from '../command.js';

export const commands: Command[] = [
  {
    names: ['key', 'show'], args: '', summary: "the bastion's client public key, for targets' authorized_keys", json: true,
    positionals: { min: 0, max: 0 },
    async handler(ctx) {
      const { dataDir } = await ctx.open();
      return { text: dataDir.clientPublicKey, json: { publicKey: dataDir.clientPublicKey } };
    },
  },
];
