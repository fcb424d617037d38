// WebAuthn ceremonies for Rampart's pages: register a key or passkey, sign in with one, step up.
// Served by the app itself (no CDN). Wired to elements by data attributes, never inline handlers,
// so the page's CSP needs no 'unsafe-inline'.
(function () {
  "use strict";

  function toBuffer(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    var pk = Object.assign({}, o);
    pk.challenge = toBuffer(o.challenge);
    pk.user = Object.assign({}, o.user, { id: toBuffer(o.user.id) });
    pk.excludeCredentials = (o.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBuffer(c.id) });
    });
    return pk;
  }

  function requestOptions(o) {
    var pk = Object.assign({}, o);
    pk.challenge = toBuffer(o.challenge);
    pk.allowCredentials = (o.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: toBuffer(c.id) });
    });
    return pk;
  }

  function registrationJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        attestationObject: toB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : []
      }
    };
  }

  function assertionJSON(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null
      }
    };
  }

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function post(url, body) {
    var response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {})
    });
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      var message = (data && (data.detail || data.title)) || "The request failed.";
      var error = new Error(message);
      error.problem = data;
      throw error;
    }
    return data;
  }

  function say(element, text, isError) {
    var target = document.getElementById(element.getAttribute("data-status") || "mfa-status");
    if (target) {
      target.textContent = text;
      target.className = isError ? "mfa-status error" : "mfa-status";
    }
  }

  async function register(button) {
    var nameInput = document.getElementById(button.getAttribute("data-name-input"));
    var name = (nameInput && nameInput.value.trim()) || "Security key";
    say(button, "Follow your browser's prompt…");
    var begin = await post("/v1/mfa/webauthn/registrations", {});
    var cred = await navigator.credentials.create({ publicKey: creationOptions(begin.options) });
    var done = await post("/v1/mfa/webauthn/registrations/" + encodeURIComponent(begin.challenge_id),
      { credential: registrationJSON(cred), name: name });
    var next = button.getAttribute("data-next") || window.location.pathname;
    if (done.backup_codes && done.backup_codes.length) {
      // Shown once, from this response, on this page: never written to browser storage, where
      // any script of the origin (or someone at the same browser profile) could read them later.
      showNewBackupCodes(button, done.backup_codes, next);
      say(button, "Your security key is registered.");
      return;
    }
    window.location.assign(next);
  }

  async function signIn(button) {
    say(button, "Use your security key or passkey…");
    var begin = await post(button.getAttribute("data-options-url"), { kind: "webauthn" });
    var cred = await navigator.credentials.get({ publicKey: requestOptions(begin.options) });
    var done = await post(button.getAttribute("data-verify-url"),
      { kind: "webauthn", challenge_id: begin.challenge_id, credential: assertionJSON(cred) });
    window.location.assign((done && done.next) || button.getAttribute("data-next") || "/");
  }

  // A staff account's enrolment link: the token (not a session) authorises the registration;
  // the password is set in the same request, so the account never works without the key.
  async function staffEnrol(button) {
    var password = document.getElementById(button.getAttribute("data-password-input")).value;
    var nameInput = document.getElementById(button.getAttribute("data-name-input"));
    var name = (nameInput && nameInput.value.trim()) || "Security key";
    var token = button.getAttribute("data-token");
    if (!password) { throw new Error("Choose a password first."); }
    say(button, "Follow your browser's prompt…");
    var begin = await post("/v1/auth/staff-enrolment/challenge", { token: token });
    var cred = await navigator.credentials.create({ publicKey: creationOptions(begin.options) });
    var done = await post("/v1/auth/staff-enrolment", {
      token: token, password: password, challenge_id: begin.challenge_id,
      credential: registrationJSON(cred), name: name
    });
    document.getElementById("staff-enrol-form").hidden = true;
    var list = document.createElement("ol");
    (done.backup_codes || []).forEach(function (code) {
      var item = document.createElement("li");
      item.textContent = code;
      list.appendChild(item);
    });
    document.getElementById("staff-enrol-codes").appendChild(list);
    document.getElementById("staff-enrol-done").hidden = false;
    say(button, "Your security key is registered.");
  }

  function bind(selector, action) {
    document.querySelectorAll(selector).forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        if (!window.PublicKeyCredential) {
          say(button, "This browser does not support security keys or passkeys.", true);
          return;
        }
        button.disabled = true;
        action(button).catch(function (error) {
          say(button, error.message || "That did not work; try again.", true);
          button.disabled = false;
        });
      });
    });
  }

  function showNewBackupCodes(button, codes, next) {
    var holder = document.getElementById("mfa-new-backup-codes");
    if (!holder) {
      holder = document.createElement("div");
      holder.className = "codes";
      button.parentNode.insertBefore(holder, button.nextSibling);
    }
    var list = document.createElement("ol");
    codes.forEach(function (code) {
      var item = document.createElement("li");
      item.textContent = code;
      list.appendChild(item);
    });
    holder.appendChild(list);
    var saved = document.createElement("a");
    saved.id = "mfa-backup-codes-saved";
    saved.href = next;
    saved.textContent = "I have saved them: continue";
    holder.appendChild(saved);
    holder.hidden = false;
    holder.scrollIntoView();
  }

  document.addEventListener("DOMContentLoaded", function () {
    bind("[data-webauthn-register]", register);
    bind("[data-webauthn-sign-in]", signIn);
    bind("[data-staff-enrol]", staffEnrol);
  });
})();
