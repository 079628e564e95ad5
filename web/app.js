// gatehouse web UI: starts asciinema-player on the session page (replay, or live over WebSocket).
// External file on purpose: the Content-Security-Policy allows no inline script.
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
