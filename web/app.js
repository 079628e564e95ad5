// gatehouse web UI: readable times everywhere, and asciinema-player on the session page (replay, or
// live over WebSocket). External file on purpose: the Content-Security-Policy allows no inline script.
(function () {
  'use strict';
  // Times come as UTC ISO in <time datetime>: shown relative ("3 h ago"), the exact time on hover in
  // the browser's time zone and in UTC.
  var units = [['year', 31536e6], ['month', 2592e6], ['week', 6048e5], ['day', 864e5], ['hour', 36e5], ['minute', 6e4], ['second', 1e3]];
  var rtf = typeof Intl !== 'undefined' && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;
  var times = document.querySelectorAll('time[datetime]');
  for (var i = 0; i < times.length; i++) {
    var el = times[i];
    var iso = el.getAttribute('datetime');
    var ms = Date.parse(iso);
    if (isNaN(ms) || !rtf) continue;
    var diff = ms - Date.now();
    var abs = Math.abs(diff);
    var u = units[units.length - 1];
    for (var j = 0; j < units.length; j++) if (abs >= units[j][1]) { u = units[j]; break; }
    el.textContent = rtf.format(Math.round(diff / u[1]), u[0]);
    el.title = new Date(ms).toLocaleString(undefined, { timeZoneName: 'short' }) + ' (' + iso + ')';
    el.classList.add('relative');
  }
})();
(function () {
  'use strict';
  var el = document.getElementById('player');
  if (!el || typeof AsciinemaPlayer === 'undefined') return;
  var start = parseFloat(el.getAttribute('data-start') || '');
  var live = el.getAttribute('data-live');
  var opts = { fit: 'width', idleTimeLimit: 2, preload: true, theme: 'asciinema' };
  var src;
  if (live) {
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    src = { driver: 'websocket', url: proto + location.host + live, protocol: 'v2.asciicast' };
    opts.autoPlay = true;
  } else {
    src = { url: el.getAttribute('data-cast'), fetchOpts: { credentials: 'same-origin' } };
    // The exec commands are "m" events inside the recording: the player shows them as markers
    // (passing a markers option would replace them).
    if (!isNaN(start)) { opts.startAt = start; opts.autoPlay = true; }
  }
  window.gatehousePlayer = AsciinemaPlayer.create(src, el, opts);
})();
(function () {
  'use strict';
  // A live session whose first channel has not opened yet: reload until it has (then the player
  // above takes over). Every 2 s for the first minute, then every 10 s, for 15 minutes in all; a tab
  // in the background waits. Any other page ends the count.
  var FAST = 30, SLOW = 84; // reloads: 30 x 2 s, then 84 x 10 s = 15 minutes
  var key = 'gatehouse-wait:' + location.pathname + location.search;
  var el = document.getElementById('live-waiting');
  if (!el) { try { sessionStorage.removeItem(key); } catch (e) { /* storage off */ } return; }
  var n = 0;
  try { n = Number(sessionStorage.getItem(key) || 0); } catch (e) { n = FAST + SLOW; /* storage off: no count, so no loop */ }
  if (n >= FAST + SLOW) { el.textContent = 'Live, and still no channel after 15 minutes: reload the page to check again.'; try { sessionStorage.removeItem(key); } catch (e) { /* storage off */ } return; }
  var reload = function () {
    if (document.visibilityState === 'hidden') { document.addEventListener('visibilitychange', reload, { once: true }); return; }
    try { sessionStorage.setItem(key, String(n + 1)); } catch (e) { /* storage off */ }
    location.reload();
  };
  setTimeout(reload, n < FAST ? 2000 : 10000);
})();
