// gatehouse web UI: security keys (WebAuthn) through the browser's own navigator.credentials, no
// library. The server (src/web/webauthn.ts) puts the options in the form's data-options as JSON with
// base64url binary fields; this file turns them into ArrayBuffers, asks the authenticator, and posts
// the answer back as JSON in the form's hidden `response` field. External file: the CSP forbids inline script.
(function () {
  'use strict';
  function fromB64u(s) {
    s = String(s).replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64u(buf) {
    var a = new Uint8Array(buf);
    var s = '';
    for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: 'public-key', id: fromB64u(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }
  function say(form, msg) {
    var el = form.querySelector('.webauthn-status');
    if (el) el.textContent = msg;
  }
  function unavailable(form) {
    if (window.PublicKeyCredential && navigator.credentials) return false;
    say(form, 'This browser does not support security keys here (WebAuthn needs HTTPS or localhost).');
    return true;
  }

  var reg = document.getElementById('webauthn-register');
  if (reg) {
    reg.addEventListener('submit', function (e) {
      e.preventDefault();
      if (unavailable(reg)) return;
      var o = JSON.parse(reg.getAttribute('data-options'));
      var pk = {
        challenge: fromB64u(o.challenge), rp: o.rp,
        user: { id: fromB64u(o.user.id), name: o.user.name, displayName: o.user.displayName || o.user.name },
        pubKeyCredParams: o.pubKeyCredParams, timeout: o.timeout, attestation: o.attestation || 'none',
        authenticatorSelection: o.authenticatorSelection, excludeCredentials: descriptors(o.excludeCredentials),
      };
      say(reg, 'Touch your security key…');
      navigator.credentials.create({ publicKey: pk }).then(function (cred) {
        var r = cred.response;
        reg.elements.response.value = JSON.stringify({
          id: cred.id, rawId: toB64u(cred.rawId), type: cred.type,
          clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
          response: {
            clientDataJSON: toB64u(r.clientDataJSON), attestationObject: toB64u(r.attestationObject),
            transports: r.getTransports ? r.getTransports() : [],
          },
        });
        reg.submit(); // submit() fires no submit event: this handler does not run again
      }, function (err) {
        say(reg, 'The security key was not registered (' + (err && err.name) + ').');
      });
    });
  }

  var login = document.getElementById('webauthn-login');
  if (login) {
    var ask = function () {
      if (unavailable(login)) return;
      var o = JSON.parse(login.getAttribute('data-options'));
      var pk = { challenge: fromB64u(o.challenge), rpId: o.rpId, timeout: o.timeout, userVerification: o.userVerification, allowCredentials: descriptors(o.allowCredentials) };
      say(login, 'Waiting for your security key…');
      navigator.credentials.get({ publicKey: pk }).then(function (cred) {
        var r = cred.response;
        login.elements.response.value = JSON.stringify({
          id: cred.id, rawId: toB64u(cred.rawId), type: cred.type,
          clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
          response: {
            clientDataJSON: toB64u(r.clientDataJSON), authenticatorData: toB64u(r.authenticatorData), signature: toB64u(r.signature),
            userHandle: r.userHandle ? toB64u(r.userHandle) : undefined,
          },
        });
        login.submit();
      }, function (err) {
        say(login, 'No answer from a security key (' + (err && err.name) + '). Try again, or log in with a code.');
      });
    };
    login.addEventListener('submit', function (e) { e.preventDefault(); ask(); });
    ask();
  }
})();
