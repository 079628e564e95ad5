// gatehouse web UI: starts asciinema-player on the session page (replay, or live over WebSocket).
// External file on purpose: the Content-Security-Policy allows no inline script.
(function () {
  'use strict';
  var el = document.getElementById('player');
  if (!el || typeof AsciinemaPlayer === 'undefined') return;
  var markers = [];
  try { markers = JSON.parse(el.getAttribute('data-markers') || '[]'); } catch (e) { markers = []; }
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
    if (!isNaN(start)) { opts.startAt = start; opts.autoPlay = true; }
    if (markers.length) opts.markers = markers;
  }
  window.gatehousePlayer = AsciinemaPlayer.create(src, el, opts);
})();
