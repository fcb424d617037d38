// The market page, live: quotes, trades and the user's own orders over the WebSocket stream
// (/v1/stream, authenticated by the session cookie), depth refreshed by re-subscribing (the
// server answers a subscribe with a book snapshot). When the stream cannot be used, the page
// polls GET /v1/market/{symbol}/book instead. Every value from the server goes into the page
// as text (textContent), never as HTML.
(function () {
  "use strict";

  var root = document.getElementById("market");
  if (!root) { return; }
  var depth = parseInt(root.getAttribute("data-depth") || "5", 10);
  var live = document.getElementById("live");
  var sections = {};
  Array.prototype.forEach.call(root.querySelectorAll("section.instrument[data-symbol]"), function (el) {
    sections[el.getAttribute("data-symbol")] = el;
  });
  var symbols = Object.keys(sections);
  var MAX_TRADES = 12;
  var BOOK_REFRESH_MS = 2000;
  var POLL_MS = 3000;
  var ORDER_ID = /^[0-9a-f-]{36}$/;
  var socket = null;
  var retryMs = 1000;
  var pollTimer = null;
  var refreshTimer = null;

  function status(text, state) {
    live.textContent = text;
    live.setAttribute("data-state", state);
  }

  // A price with at least the tick's decimal places (18.2 -> 18.20); never rounded.
  function price(section, value) {
    if (value === null || value === undefined || value === "") { return value; }
    var places = parseInt(section.getAttribute("data-decimals") || "0", 10);
    var parts = String(value).split(".");
    var fraction = parts[1] || "";
    while (fraction.length < places) { fraction += "0"; }
    return fraction ? parts[0] + "." + fraction : parts[0];
  }

  function field(section, name) {
    return section.querySelector('[data-field="' + name + '"]');
  }

  function setText(el, value) {
    if (!el) { return; }
    var text = value === null || value === undefined || value === "" ? "–" : String(value);
    if (el.textContent !== text) {
      el.textContent = text;
      el.classList.remove("flash");
      void el.offsetWidth; // restart the highlight animation
      el.classList.add("flash");
    }
  }

  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) { td.className = cls; }
    return td;
  }

  // levels: [[price, quantity], ...] (stream) or [{price, quantity}, ...] (JSON endpoint)
  function level(levels, n) {
    var lv = levels && levels[n];
    if (!lv) { return ["", ""]; }
    return Array.isArray(lv) ? [lv[0], lv[1]] : [lv.price, lv.quantity];
  }

  function showBook(data) {
    var section = sections[data.symbol];
    if (!section) { return; }
    var body = section.querySelector('[data-role="depth"]');
    var rows = document.createDocumentFragment();
    for (var n = 0; n < depth; n++) {
      var bid = level(data.bids, n), ask = level(data.asks, n);
      var tr = document.createElement("tr");
      tr.appendChild(cell(bid[1]));
      tr.appendChild(cell(price(section, bid[0]), "bid"));
      tr.appendChild(cell(price(section, ask[0]), "ask"));
      tr.appendChild(cell(ask[1]));
      rows.appendChild(tr);
    }
    body.replaceChildren(rows);
    var b = level(data.bids, 0), a = level(data.asks, 0);
    setText(field(section, "bid"), price(section, b[0]));
    setText(field(section, "bid_size"), b[1]);
    setText(field(section, "ask"), price(section, a[0]));
    setText(field(section, "ask_size"), a[1]);
    if (data.last_price) { setText(field(section, "last"), price(section, data.last_price)); }
  }

  function showQuote(q) {
    var section = sections[q.symbol];
    if (!section) { return; }
    setText(field(section, "bid"), price(section, q.bid));
    setText(field(section, "bid_size"), q.bid_size);
    setText(field(section, "ask"), price(section, q.ask));
    setText(field(section, "ask_size"), q.ask_size);
  }

  function showTrade(t) {
    var section = sections[t.symbol];
    if (!section) { return; }
    setText(field(section, "last"), price(section, t.price));
    var label = section.querySelector(".last .label");
    if (label) { label.textContent = "Last"; }
    var list = section.querySelector('[data-role="trades"]');
    var hint = list.querySelector(".hint");
    if (hint) { hint.remove(); }
    var li = document.createElement("li");
    li.className = t.aggressor === "buy" ? "up" : "down";
    var time = document.createElement("time");
    time.textContent = (t.at || "").slice(11, 19);
    var what = document.createElement("span");
    what.textContent = t.quantity + " @ " + price(section, t.price);
    li.appendChild(time);
    li.appendChild(what);
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_TRADES) { list.removeChild(list.lastChild); }
  }

  // --- the user's own open orders ------------------------------------------------------------
  var ordersTable = document.getElementById("open-orders");

  function cancelForm(id) {
    var form = document.createElement("form");
    form.method = "post";
    form.action = "/market/orders/" + encodeURIComponent(id) + "/cancel";
    form.className = "inline";
    var csrf = document.createElement("input");
    csrf.type = "hidden";
    csrf.name = "csrf_token";
    csrf.value = ordersTable.getAttribute("data-csrf");
    var button = document.createElement("button");
    button.type = "submit";
    button.className = "small";
    button.textContent = "Cancel";
    form.appendChild(csrf);
    form.appendChild(button);
    return form;
  }

  function showOrder(o) {
    if (!ordersTable || !ORDER_ID.test(o.id || "")) { return; }
    var body = ordersTable.tBodies[0];
    var row = body.querySelector('tr[data-order="' + o.id + '"]');
    var open = o.status === "accepted" || o.status === "partially_filled";
    if (!open) {
      if (row) { row.remove(); }
    } else {
      var fresh = document.createElement("tr");
      fresh.setAttribute("data-order", o.id);
      [o.symbol, (o.side || "").replace("_", " "), o.quantity, o.filled_quantity,
        o.limit_price || "market", (o.status || "").replace("_", " ")].forEach(function (v) {
        fresh.appendChild(cell(v));
      });
      var actions = document.createElement("td");
      if (ordersTable.getAttribute("data-can-cancel") === "yes") { actions.appendChild(cancelForm(o.id)); }
      fresh.appendChild(actions);
      if (row) { body.replaceChild(fresh, row); } else { body.insertBefore(fresh, body.firstChild); }
    }
    var none = document.getElementById("no-open-orders");
    if (none) { none.hidden = body.rows.length > 0; }
  }

  // --- the stream ------------------------------------------------------------------------------
  function subscribe() {
    if (socket && socket.readyState === WebSocket.OPEN && !document.hidden) {
      socket.send(JSON.stringify({ op: "subscribe", symbols: symbols }));
    }
  }

  // A quote or trade means the book changed: ask for a fresh snapshot soon, at most one
  // request per REFRESH_SOON_MS, so the depth table agrees with the touch shown above it.
  var REFRESH_SOON_MS = 300;
  var refreshPending = false;
  function refreshSoon() {
    if (refreshPending) { return; }
    refreshPending = true;
    window.setTimeout(function () { refreshPending = false; subscribe(); }, REFRESH_SOON_MS);
  }

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    var data = message.data || {};
    switch (message.type) {
      case "book": showBook(data); break;
      case "quote": showQuote(data); refreshSoon(); break;
      case "trade": showTrade(data); refreshSoon(); break;
      case "order": showOrder(data); break;
      default: break;
    }
  }

  function connect() {
    if (!("WebSocket" in window)) { startPolling("polling (no WebSocket support)"); return; }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var opened = false;
    try {
      socket = new WebSocket(scheme + location.host + "/v1/stream");
    } catch (e) {
      startPolling("polling (stream unavailable)");
      return;
    }
    socket.addEventListener("open", function () {
      opened = true;
      retryMs = 1000;
      stopPolling();
      status("live", "live");
      subscribe();
      refreshTimer = window.setInterval(subscribe, BOOK_REFRESH_MS);
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function (event) {
      window.clearInterval(refreshTimer);
      socket = null;
      // 1008 "credential revoked": this sign-in ended (logout elsewhere, a lock, an
      // administrator); reconnecting cannot succeed, signing in again can.
      if (event.code === 1008 && event.reason === "credential revoked") {
        window.location.assign("/login");
        return;
      }
      // Keep the page current by polling while the stream is down, and try it again later.
      startPolling(opened ? "reconnecting… (polling meanwhile)" : "polling (stream unavailable)");
      window.setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    });
  }

  // --- the fallback: polling the JSON endpoint -------------------------------------------------
  function poll() {
    if (document.hidden) { return; }
    symbols.forEach(function (symbol) {
      fetch("/v1/market/" + encodeURIComponent(symbol) + "/book?depth=" + encodeURIComponent(depth), {
        credentials: "same-origin",
        headers: { Accept: "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (book) {
        if (book) { showBook(book); }
      }).catch(function () { /* the next poll tries again */ });
    });
  }

  function startPolling(text) {
    status(text, "polling");
    if (pollTimer === null) {
      poll();
      pollTimer = window.setInterval(poll, POLL_MS);
    }
  }

  function stopPolling() {
    if (pollTimer !== null) {
      window.clearInterval(pollTimer);
      pollTimer = null;
    }
  }

  status("connecting…", "connecting");
  connect();
})();
