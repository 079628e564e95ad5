import type { Client, ClientChannel } from 'ssh2';
import { draft } from '../audit/events.js';
import type { Gate } from '../auth/admit.js';
import type { Grant } from '../auth/policy.js';
import type { Config } from '../config/schema.js';
import { dial, DialFailure } from '../proxy/dialer.js';
import { exitOf, fanOut, watchExit } from '../proxy/relay.js';
import type { TargetAuth } from '../proxy/targetauth.js';
import type { ChannelInfo, ChannelObserver, ObserverFactory } from '../shared/channel.js';
import { isoTime, type Clock } from '../shared/clock.js';
import { GatehouseError } from '../shared/errors.js';
import type { Ids } from '../shared/ids.js';
import type { Logger } from '../shared/logger.js';
import type { HostRecord, Store } from '../store/types.js';
import type { FleetScanRecord } from './facts.js';
import { clean, parseProbeOutput } from './parse.js';
import { MAX_PROBE_OUTPUT, probeCommand } from './probes.js';
import { pool } from './pool.js';

/**
 * Fleet scans: the probe (probes.ts) run on each enabled host through the bastion's own paths.
 *   admit   Gate.system: the host exists and is enabled; the login is fleet.login; exec only
 *   dial    proxy/dialer with that Grant: the pinned host key (a changed key is reported as
 *           host.key_mismatch, never accepted), the bastion's key or a per-channel certificate
 *   record  a session row (user `system:fleet`, mode `fleet`), session.start/channel/end and the
 *           channel's observers (recorder, digest): the same list an operator's channel gets
 *   store   the parsed facts in store.fleet, and `fleet.scan` in the audit log
 * Hosts run in parallel up to fleet.parallel; each has fleet.timeout for everything (connect
 * included), and a failure is stored as the host's scan result, not retried.
 */
export const FLEET_ACTOR = 'system:fleet';

export interface ScanDeps {
  config: Config;
  store: Store;
  clock: Clock;
  log: Logger;
  ids: Ids;
  gate: Gate;
  clientKey: Buffer;
  targetAuth?: TargetAuth;
  /** The observers every relayed channel gets (observers.ts): the scan is recorded like a session. */
  observers: ObserverFactory;
  /** The name written on the scan's session rows. */
  node: string;
}

export interface ScanRequest {
  /** Only these hosts (by name); all enabled hosts when neither this nor group is given. */
  hosts?: string[];
  group?: string;
  /** Overrides fleet.login (the CLI's --login). */
  login?: string;
}

/** Which hosts a request names: unknown names are an error; disabled hosts are skipped unless named. */
export async function selectHosts(store: Store, req: ScanRequest): Promise<HostRecord[]> {
  const all = await store.hosts.list();
  if (req.hosts && req.hosts.length > 0) {
    const byName = new Map(all.map((h) => [h.name, h]));
    const missing = req.hosts.filter((n) => !byName.has(n));
    if (missing.length > 0) throw new GatehouseError('GH_NOT_FOUND', `unknown host(s): ${missing.slice(0, 10).join(', ')}`);
    return [...new Set(req.hosts)].map((n) => byName.get(n)!);
  }
  if (req.group !== undefined) {
    const hosts = all.filter((h) => h.groups.includes(req.group!) && h.enabled);
    if (hosts.length === 0) throw new GatehouseError('GH_NOT_FOUND', `no enabled host is in host group ${req.group}`);
    return hosts;
  }
  return all.filter((h) => h.enabled);
}

export async function scanFleet(deps: ScanDeps, req: ScanRequest = {}): Promise<FleetScanRecord[]> {
  const login = req.login ?? deps.config.fleet.login;
  if (!login) {
    throw new GatehouseError('GH_CONFIG', 'fleet scans need fleet.login: the account on the targets that scans log in as', {
      hint: 'set fleet.login in the config (a least-privileged account whose authorized_keys has `gatehouse key show`), or pass --login',
    });
  }
  const hosts = await selectHosts(deps.store, req);
  return pool(hosts, deps.config.fleet.parallel, (h) => scanHost(deps, h, login));
}

/** One host: never throws; a failure is the host's result. */
export async function scanHost(deps: ScanDeps, host: HostRecord, login: string): Promise<FleetScanRecord> {
  const { store, clock, log } = deps;
  const started = clock.now();
  let result: FleetScanRecord;
  try {
    result = await runScan(deps, host, login, started);
  } catch (err) {
    log.error({ err, host: host.name }, 'fleet scan failed');
    result = { host: host.name, scannedAt: started, reachable: false, error: 'internal error; the log has details', sessionId: null, durationMs: clock.now() - started, facts: null };
  }
  await store.fleet.put(result);
  const f = result.facts;
  await store.audit.append(draft('fleet.scan', 'system', {
    host: host.name, session: result.sessionId, reachable: result.reachable, ...(result.error ? { error: result.error } : {}),
    ...(f ? { pending: f.updates.pending, security: f.updates.security, reboot: f.rebootRequired } : {}),
  }));
  return result;
}

async function runScan(deps: ScanDeps, host: HostRecord, login: string, started: number): Promise<FleetScanRecord> {
  const { store, clock, ids, gate, config } = deps;
  const failed = (error: string, sessionId: string | null): FleetScanRecord =>
    ({ host: host.name, scannedAt: started, reachable: false, error, sessionId, durationMs: clock.now() - started, facts: null });

  const d = await gate.system(FLEET_ACTOR, { host: host.name, login });
  if (!d.allow) return failed(d.message, null);
  const grant = d.grant;
  const sessionId = ids.sessionId();
  await store.sessions.open({ id: sessionId, user: FLEET_ACTOR, keyFingerprint: '', sourceAddr: 'bastion', mode: 'fleet', node: deps.node });
  await store.audit.append(draft('session.start', 'system', { session: sessionId, user: FLEET_ACTOR, source: 'bastion', key: '' }));
  const session = new ScanSession(deps, sessionId);
  try {
    const outcome = await session.run(grant, host, config.fleet.timeout);
    if (!outcome.ok) return failed(outcome.error, sessionId);
    const facts = parseProbeOutput(outcome.output, outcome.cut);
    const error = outcome.timedOut ? `timed out after ${config.fleet.timeout} ms (partial result)` : null;
    return { host: host.name, scannedAt: started, reachable: true, error, sessionId, durationMs: clock.now() - started, facts };
  } finally {
    await session.close();
  }
}

type Outcome = { ok: true; output: string; cut: boolean; timedOut: boolean } | { ok: false; error: string };

/** The scan's session: one upstream connection, one recorded exec channel, then the rows closed. */
class ScanSession {
  private up = 0;
  private down = 0;
  private endReason = 'scan_done';
  private readonly pending = new Set<Promise<unknown>>();
  private client: Client | null = null;

  constructor(private readonly deps: ScanDeps, private readonly id: string) {}

  async run(grant: Grant, host: HostRecord, timeoutMs: number): Promise<Outcome> {
    const deadline = this.deps.clock.now() + timeoutMs;
    const left = () => Math.max(1, deadline - this.deps.clock.now());
    const channel = 0;
    const command = probeCommand();
    let cert: { serial: string; keyId: string; validBefore: number } | undefined;
    try {
      let key: Buffer | string = this.deps.clientKey;
      let certificate: Buffer | undefined;
      if (host.auth === 'cert') {
        if (!this.deps.targetAuth) throw new DialFailure({ kind: 'connect_failed', message: 'no certificate authority is configured' });
        const creds = this.deps.targetAuth.credentials(grant, 'cert', { session: this.id, channel, kind: 'exec', pty: false });
        key = creds.privateKey;
        certificate = creds.certificate;
        cert = creds.cert;
      }
      this.client = await withTimeout(dial(grant, { clientKey: key, ...(certificate ? { certificate } : {}), readyTimeoutMs: left() }), left(), 'connecting');
      this.client.on('error', () => undefined);
    } catch (err) {
      return { ok: false, error: await this.dialFailed(grant, err) };
    }

    const { store, log } = this.deps;
    await store.sessions.setTarget(this.id, grant.host, grant.login, grant.grantId);
    await store.sessions.openChannel({ sessionId: this.id, channel, kind: 'exec', command, pty: false, host: grant.host, login: grant.login });
    await store.audit.append(draft('session.channel', 'system', {
      session: this.id, user: FLEET_ACTOR, channel, kind: 'exec', host: grant.host, login: grant.login, command, grant: grant.grantId,
      ...(cert ? { certSerial: cert.serial, certKeyId: cert.keyId, certValidBefore: isoTime(cert.validBefore * 1000) } : {}),
    }));
    const info: ChannelInfo = { sessionId: this.id, channel, user: FLEET_ACTOR, host: grant.host, login: grant.login, kind: 'exec', command, action: 'exec', pty: null };
    let abort: ((message: string) => void) | null = null;
    const counter: ChannelObserver = { onInput: (b) => { this.up += b.length; }, onOutput: (b) => { this.down += b.length; } };
    let obs: Required<ChannelObserver>;
    try {
      const observers = await this.deps.observers(info, {
        abort: (m) => abort?.(m), track: (p) => this.track(p), counter, filter: () => undefined,
      });
      obs = fanOut(observers, (err) => log.error({ err, session: this.id }, 'observer failed'));
    } catch (err) {
      // The recording cannot be written: the probe does not run (recording fails closed).
      await store.sessions.closeChannel({ sessionId: this.id, channel, exitStatus: null, exitSignal: null, ...NO_STREAMS });
      this.endReason = 'recording_failed';
      return { ok: false, error: clean(err instanceof Error ? err.message : String(err), 200) };
    }

    const client = this.client;
    const ch = await new Promise<ClientChannel | Error>((resolve) => client.exec(command, (err, c) => resolve(err ?? watchExit(c))));
    if (ch instanceof Error) {
      obs.onEnd({ code: null, signal: null, coreDumped: false, description: '' }, 'target_closed');
      return { ok: false, error: `the target refused the probe: ${clean(ch.message, 200)}` };
    }
    return new Promise<Outcome>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let cut = false;
      let timedOut = false;
      let finished = false;
      let hardStop: NodeJS.Timeout | undefined;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        clearTimeout(hardStop);
        obs.onEnd(exitOf(ch), 'target_closed');
        if (timedOut) this.endReason = 'scan_timeout';
        // One decoder over the whole output: a character split across packets stays whole.
        resolve({ ok: true, output: new TextDecoder().decode(Buffer.concat(chunks)), cut, timedOut });
      };
      // sshd answers our CLOSE only once the command has exited: a command that hangs or is
      // blocked writing would hold the scan. Closed by us, the channel is done a moment later
      // whatever the target does (the connection is ended right after).
      const stop = () => {
        ch.close();
        hardStop ??= setTimeout(finish, STOP_GRACE_MS);
      };
      abort = stop;
      ch.on('data', (b: Buffer) => {
        if (finished) return; // after the end was recorded, nothing more is
        obs.onOutput(b, 'stdout');
        if (cut) return;
        const room = MAX_PROBE_OUTPUT - size;
        if (b.length > room) {
          chunks.push(b.subarray(0, room));
          size = MAX_PROBE_OUTPUT;
          cut = true;
          stop();
          return;
        }
        chunks.push(b);
        size += b.length;
      });
      ch.stderr.on('data', (b: Buffer) => { if (!finished) obs.onOutput(b, 'stderr'); });
      const timer = setTimeout(() => { timedOut = true; cut = true; stop(); }, left());
      ch.on('close', finish);
      ch.end();
    });
  }

  private track(p: Promise<unknown>): void {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  private async dialFailed(grant: Grant, err: unknown): Promise<string> {
    const { store } = this.deps;
    if (err instanceof DialFailure && err.detail.kind === 'host_key_mismatch') {
      this.endReason = 'host_key_mismatch';
      await store.audit.append(draft('host.key_mismatch', 'system', {
        host: grant.host, expected: err.detail.expected, presented: err.detail.presented, user: FLEET_ACTOR, session: this.id,
      }));
      return `host key of ${grant.host} changed (presented ${err.detail.presented}); not scanned`;
    }
    // The target writes DISCONNECT descriptions: one short printable line, whatever it sent.
    const message = clean(err instanceof Error ? err.message : String(err), 200);
    this.endReason = 'target_unreachable';
    await store.audit.append(draft('target.connect_failed', 'system', { host: grant.host, login: grant.login, user: FLEET_ACTOR, session: this.id, error: message }));
    return err instanceof DialFailure && err.detail.kind === 'not_pinned' ? message : `unreachable: ${message}`;
  }

  async close(): Promise<void> {
    this.client?.end();
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    const { store, clock } = this.deps;
    const row = await store.sessions.close(this.id, this.endReason, this.up, this.down);
    await store.audit.append(draft('session.end', 'system', {
      session: this.id, user: FLEET_ACTOR, reason: this.endReason, durationMs: row ? clock.now() - row.startedAt : 0, bytesUp: this.up, bytesDown: this.down,
    }));
  }
}

/** How long a channel we closed may take to say so before the scan goes on without it. */
const STOP_GRACE_MS = 2_000;

const NO_STREAMS = { stdinBytes: 0, stdoutBytes: 0, stderrBytes: 0, stdinSha256: '', stdoutSha256: '', stderrSha256: '' };

function withTimeout<T extends { end(): unknown }>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    const t = setTimeout(() => { done = true; reject(new DialFailure({ kind: 'connect_failed', message: `timed out ${what}` })); }, ms);
    p.then((v) => { clearTimeout(t); if (done) v.end(); else resolve(v); }, (err: unknown) => { clearTimeout(t); if (!done) reject(err); });
  });
}
