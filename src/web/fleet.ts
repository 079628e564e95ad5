import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DISK_RED, fleetRows, type FleetRow } from '../fleet/view.js';
import type { Store } from '../store/types.js';
import { html, page, type Html } from './html.js';
import { oneOf, only } from './input.js';

/**
 * The Fleet page: one row per host from the latest scans (src/fleet), sortable by any column with
 * plain links (no script), red where a host needs attention: a failed scan, security updates
 * pending, a reboot required, a disk over 90 %. Auditors and admins, like the Hosts page.
 */
const COLUMNS = {
  host: { label: 'Host', key: (r: FleetRow) => r.host },
  reachable: { label: 'Reachable', key: (r: FleetRow) => (r.reachable === null ? -1 : r.reachable ? 1 : 0) },
  os: { label: 'OS', key: (r: FleetRow) => r.os ?? '' },
  kernel: { label: 'Kernel', key: (r: FleetRow) => r.kernel ?? '' },
  pending: { label: 'Updates', key: (r: FleetRow) => r.pending ?? -1 },
  security: { label: 'Security', key: (r: FleetRow) => r.security ?? -1 },
  reboot: { label: 'Reboot', key: (r: FleetRow) => (r.reboot === null ? -1 : r.reboot ? 1 : 0) },
  disk: { label: 'Disk max', key: (r: FleetRow) => r.diskMaxPercent ?? -1 },
  units: { label: 'Failed units', key: (r: FleetRow) => r.failedUnits ?? -1 },
  scan: { label: 'Last scan', key: (r: FleetRow) => r.lastScan ?? '' },
} as const;
type Column = keyof typeof COLUMNS;

const S = { querystring: only({ sort: oneOf(Object.keys(COLUMNS)), dir: oneOf(['asc', 'desc']) }) };

export function registerFleet(app: FastifyInstance, deps: { store: Store; authenticate: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown> }): void {
  app.get('/fleet', { preHandler: deps.authenticate, schema: S }, async (req, reply) => {
    const q = req.query as { sort?: Column; dir?: 'asc' | 'desc' };
    const sort: Column = q.sort ?? 'host';
    const dir = q.dir ?? 'asc';
    const key = COLUMNS[sort].key;
    const rows = (await fleetRows(deps.store)).sort((a, b) => {
      const x = key(a);
      const y = key(b);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return (dir === 'asc' ? c : -c) || a.host.localeCompare(b.host);
    });
    const head = (Object.keys(COLUMNS) as Column[]).map((c) => {
      const next = c === sort && dir === 'asc' ? 'desc' : 'asc';
      const mark = c === sort ? (dir === 'asc' ? ' ▲' : ' ▼') : '';
      return html`<th><a class="sort" href="/fleet?sort=${c}&amp;dir=${next}">${COLUMNS[c].label}${mark}</a></th>`;
    });
    const red = (bad: boolean, content: unknown): Html => (bad ? html`<td class="fleet-red">${content}</td>` : html`<td>${content}</td>`);
    const q3 = (v: number | null) => (v === null ? '?' : String(v));
    const body = html`<p>The latest scan of each host (<code>gatehouse fleet scan</code>, or <code>fleet.scanEvery</code>). Red: a failed or cut-short scan,
      security updates pending, a reboot required, a disk over ${DISK_RED} %.</p>
      <table id="fleet"><thead><tr>${head}<th>Problems</th></tr></thead><tbody>
      ${rows.map((r) => html`<tr class="${r.problems.length ? 'fleet-bad' : 'fleet-ok'}" data-host="${r.host}">
        <td>${r.host}</td>
        ${red(r.reachable === false || r.error !== null, r.reachable === null ? 'never scanned' : r.reachable ? (r.error ? `yes (${r.error})` : 'yes') : `no: ${r.error ?? ''}`)}
        <td>${r.os ?? '?'}</td><td>${r.kernel ?? '?'}</td>
        <td>${q3(r.pending)}</td>${red((r.security ?? 0) > 0, q3(r.security))}
        ${red(r.reboot === true, r.reboot === null ? '?' : r.reboot ? 'required' : 'no')}
        ${red((r.diskMaxPercent ?? 0) > DISK_RED, r.diskMaxPercent === null ? '?' : `${r.diskMaxPercent} %`)}
        <td>${q3(r.failedUnits)}</td>
        <td>${r.lastScan ? html`<time datetime="${r.lastScan}" title="${r.lastScan}">${r.lastScan}</time>` : '-'}${r.session ? html` <a href="/sessions/${r.session}">session</a>` : ''}</td>
        <td>${r.problems.join(', ')}</td></tr>`)}
      </tbody></table>`;
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page('Fleet', req.webUser!, body));
  });
}
