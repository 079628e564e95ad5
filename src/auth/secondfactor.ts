import { draft } from '../audit/events.js';
import type { Config } from '../config/schema.js';
import { open } from '../datadir/seal.js';
import { isoTime, type Clock } from '../shared/clock.js';
import type { Store, TotpRecord } from '../store/types.js';
import { checkCode } from './totp.js';

/**
 * The TOTP factor, the same for the SSH login and the web login: the code must be valid now, its
 * step not used before (claimed once per user, atomically), and a failure counts toward the
 * user's lockout (PRODUCT §7: 5 failures in 10 min lock for 15 min), whichever door it came
 * through; success clears the count.
 */
export interface SecondFactorDeps {
  store: Store;
  clock: Clock;
  config: Config;
  masterKey: Buffer;
}

export type SecondFactorResult =
  | { ok: true }
  | { ok: false; reason: 'bad_code_format' | 'wrong_code' | 'replayed_code'; lockedUntil: number | null };

export async function checkSecondFactor(
  deps: SecondFactorDeps, who: { user: string; userId: number }, rec: TotpRecord, code: string, source: string,
): Promise<SecondFactorResult> {
  const { store, clock, masterKey } = deps;
  const now = clock.now();
  const secret = open(masterKey, rec.sealedSecret, `totp:user:${rec.userId}`).toString('utf8');
  const check = checkCode(secret, code.trim(), now, null);
  let reason: 'bad_code_format' | 'wrong_code' | 'replayed_code' | null = null;
  if (!check.ok) reason = check.reason === 'bad_format' ? 'bad_code_format' : 'wrong_code';
  else if ((rec.lastStep !== null && check.step <= rec.lastStep) || !(await store.totp.claimStep(rec.userId, check.step))) reason = 'replayed_code';
  if (reason === null) {
    await store.lockout.clear(who.userId);
    return { ok: true };
  }
  const lockedUntil = await countFailedLogin(deps, who, source);
  return { ok: false, reason, lockedUntil };
}

/**
 * One failed login toward the user's lockout, whichever door and factor it came through (a wrong
 * TOTP code over SSH or the web, a wrong web password). Counted atomically in the store, so
 * parallel connections share one count. Returns the lock's end when this failure locked the user.
 */
export async function countFailedLogin(deps: SecondFactorDeps, who: { user: string; userId: number }, source: string): Promise<number | null> {
  const { store, clock, config } = deps;
  const { failures, window, duration } = config.auth.lockout;
  const lockedUntil = await store.lockout.recordFailure(who.userId, clock.now(), { failures, windowMs: window, durationMs: duration });
  if (lockedUntil !== null) await store.audit.append(draft('auth.locked', 'system', { user: who.user, source, until: isoTime(lockedUntil) }));
  return lockedUntil;
}
