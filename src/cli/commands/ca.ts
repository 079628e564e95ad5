import { draft } from '../../audit/events.js';
import { caState, retireCa, rotateCa } from '../../auth/ca.js';
import type { Command } from '../command.js';

const PROCEDURE = [
  'Rotation, with no outage at any step:',
  '  1. gatehouse ca rotate   a new key; the old one keeps signing',
  '  2. put both lines of `gatehouse ca show` in every target\'s TrustedUserCAKeys file',
  '  3. gatehouse ca retire   the new key signs from now on (a running server switches at once)',
  '  4. remove the old line from every target',
].join('\n');

export const commands: Command[] = [
  {
    names: ['ca', 'show'], args: '', json: true, positionals: { min: 0, max: 0 },
    summary: "the user CA's TrustedUserCAKeys line(s) for targets of `--auth cert` hosts (both during a rotation)",
    help: PROCEDURE,
    async handler(ctx) {
      const { dataDir } = await ctx.open();
      const s = caState(dataDir.paths.dir);
      const lines = s.next ? [s.next.line, s.signing.line] : [s.signing.line];
      return {
        text: lines.join('\n'),
        json: { signing: s.signing, next: s.next, trustedUserCaKeys: lines },
      };
    },
  },
  {
    names: ['ca', 'rotate'], args: '', positionals: { min: 0, max: 0 },
    summary: 'add a new user CA key for targets to trust; the current key keeps signing until `ca retire`',
    help: PROCEDURE,
    async handler(ctx) {
      const { dataDir, store } = await ctx.open();
      const s = rotateCa(dataDir.paths.dir);
      await store.audit.append(draft('admin.ca.rotate', ctx.actor, { signing: s.signing.fingerprint, next: s.next!.fingerprint }));
      return {
        text: [
          `added ${s.next!.fingerprint}; ${s.signing.fingerprint} still signs.`,
          'Give every target both lines of `gatehouse ca show` (TrustedUserCAKeys), then run: gatehouse ca retire',
        ].join('\n'),
        json: { signing: s.signing, next: s.next },
      };
    },
  },
  {
    names: ['ca', 'retire'], args: '', positionals: { min: 0, max: 0 },
    summary: 'switch signing to the key `ca rotate` added and drop the old one',
    help: PROCEDURE,
    async handler(ctx) {
      const { dataDir, store } = await ctx.open();
      const r = retireCa(dataDir.paths.dir);
      await store.audit.append(draft('admin.ca.retire', ctx.actor, { retired: r.retired.fingerprint, signing: r.signing.fingerprint }));
      return {
        text: `${r.signing.fingerprint} signs now; ${r.retired.fingerprint} is retired: remove its line from every target's TrustedUserCAKeys`,
        json: { signing: r.signing, retired: r.retired },
      };
    },
  },
];
