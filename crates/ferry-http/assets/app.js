// The ferry dashboard: vanilla JS, no build step, no framework, embedded in the binary.
//
// Rules this file keeps (the page runs under a strict Content-Security-Policy and shows
// untrusted data: payloads, ids, headers, reasons, errors):
// - the DOM is built with createElement/createTextNode/setAttribute only (the `h` and `s`
//   helpers below); no innerHTML, insertAdjacentHTML, outerHTML, document.write or eval;
// - attributes named on* are never set from data, hrefs are only in-page `#/...` links;
// - path segments go through encodeURIComponent, queries through URLSearchParams;
// - every mutating request carries X-CSRF-Token and Content-Type: application/json.
(function () {
  'use strict';

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const REFRESH_MS = 5000;
  const enc = encodeURIComponent;

  // ------------------------------------------------------------------ DOM helpers

  function append(el, child) {
    if (child === null || child === undefined || child === false || child === true) return;
    if (Array.isArray(child)) {
      for (const c of child) append(el, c);
      return;
    }
    if (child instanceof Node) {
      el.appendChild(child);
      return;
    }
    el.appendChild(document.createTextNode(String(child)));
  }

  function safeHref(v) {
    const s = String(v);
    return s.startsWith('#') ? s : '#/';
  }

  const BOOL_PROPS = new Set(['checked', 'disabled', 'selected', 'required', 'readOnly', 'multiple', 'hidden']);

  function setAttrs(el, attrs) {
    let value;
    for (const k of Object.keys(attrs || {})) {
      const v = attrs[k];
      if (v === null || v === undefined) continue;
      if (k.startsWith('on')) {
        if (typeof v !== 'function') throw new Error('refusing to set attribute ' + k);
        el.addEventListener(k.slice(2).toLowerCase(), v);
      } else if (k === 'class') {
        const c = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        if (c) el.setAttribute('class', c);
      } else if (k === 'test') {
        el.setAttribute('data-test', v);
      } else if (k === 'value') {
        value = v;
      } else if (BOOL_PROPS.has(k)) {
        el[k] = !!v;
      } else if (k === 'href') {
        el.setAttribute('href', safeHref(v));
      } else if (k === 'style' || k === 'srcdoc' || k === 'src') {
        throw new Error('refusing to set attribute ' + k);
      } else if (v === false) {
        continue;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    return value;
  }

  // h('tag', {attrs}, ...children): an HTML element. Strings become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    const value = setAttrs(el, attrs);
    append(el, children);
    if (value !== undefined) el.value = String(value);
    return el;
  }

  // s('tag', {attrs}, ...children): an SVG element.
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function link(...segments) {
    return '#/' + segments.map((x) => enc(String(x))).join('/');
  }

  function withQuery(hash, params) {
    const q = new URLSearchParams();
    for (const k of Object.keys(params)) {
      const v = params[k];
      if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
    }
    const str = q.toString();
    return str ? hash + '?' + str : hash;
  }

  function apiPath(...segments) {
    return 'api/' + segments.map((x, i) => (i === 0 ? x : enc(String(x)))).join('/');
  }

  // ------------------------------------------------------------------ formatting

  function pad(n, w) {
    return String(n).padStart(w || 2, '0');
  }

  function fmtTime(ms) {
    if (ms === null || ms === undefined || ms === '' || !isFinite(Number(ms))) return '—';
    const d = new Date(Number(ms));
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fmtClock(ms) {
    const d = new Date(Number(ms));
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fmtNum(n) {
    if (n === null || n === undefined || n === '') return '—';
    const x = Number(n);
    if (!isFinite(x)) return String(n);
    return x.toLocaleString('en-US');
  }

  function fmtRate(x) {
    if (x === null || x === undefined || !isFinite(x)) return '—';
    if (x === 0) return '0';
    if (x < 10) return x.toFixed(1);
    return Math.round(x).toLocaleString('en-US');
  }

  function fmtPercent(x) {
    if (x === null || x === undefined || !isFinite(x)) return '—';
    return (x * 100).toFixed(x < 0.1 && x > 0 ? 1 : 0) + ' %';
  }

  function fmtDuration(ms) {
    const x = Number(ms);
    if (!isFinite(x)) return String(ms);
    if (x === 0) return '0';
    if (x < 1000) return x + ' ms';
    if (x < 60000) return +(x / 1000).toFixed(1) + ' s';
    if (x < 3600000) return +(x / 60000).toFixed(1) + ' min';
    if (x < 86400000) return +(x / 3600000).toFixed(1) + ' h';
    return +(x / 86400000).toFixed(1) + ' d';
  }

  function fmtValue(key, v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'number' && /_ms$/.test(key)) return v < 1000 ? v + ' ms' : fmtDuration(v) + ' (' + v + ' ms)';
    if (typeof v === 'number' && /(^|_)at$/.test(key)) return fmtTime(v);
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function humanKey(k) {
    const t = String(k).replace(/_ms$/, '').replace(/_/g, ' ');
    return t.charAt(0).toUpperCase() + t.slice(1);
  }

  // ------------------------------------------------------------------ payloads

  function base64ToBytes(b64) {
    const bin = atob(String(b64));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  // {kind: 'json'|'text'|'binary'|'none', text, bytes}
  function payloadOf(obj) {
    if (!obj) return { kind: 'none' };
    if (typeof obj.payload === 'string') {
      const text = obj.payload;
      const trimmed = text.trim();
      if (trimmed && (trimmed[0] === '{' || trimmed[0] === '[')) {
        try {
          return { kind: 'json', text, pretty: JSON.stringify(JSON.parse(text), null, 2) };
        } catch (_) { /* not JSON */ }
      }
      return { kind: 'text', text };
    }
    if (obj.payload !== undefined && obj.payload !== null) {
      const text = JSON.stringify(obj.payload);
      return { kind: 'json', text, pretty: JSON.stringify(obj.payload, null, 2) };
    }
    if (typeof obj.payload_base64 === 'string') {
      try {
        return { kind: 'binary', bytes: base64ToBytes(obj.payload_base64), base64: obj.payload_base64 };
      } catch (_) {
        return { kind: 'text', text: obj.payload_base64 };
      }
    }
    return { kind: 'none' };
  }

  function hexDump(bytes) {
    const lines = [];
    for (let off = 0; off < bytes.length; off += 16) {
      const row = bytes.subarray(off, off + 16);
      let hex = '';
      let ascii = '';
      for (let i = 0; i < 16; i++) {
        if (i === 8) hex += ' ';
        if (i < row.length) {
          hex += pad(row[i].toString(16), 2) + ' ';
          ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
        } else {
          hex += '   ';
        }
      }
      lines.push(pad(off.toString(16), 8) + '  ' + hex + ' |' + ascii + '|');
    }
    return lines.join('\n');
  }

  function payloadPreview(obj, max) {
    const p = payloadOf(obj);
    const limit = max || 120;
    if (p.kind === 'binary') {
      const head = Array.from(p.bytes.subarray(0, 12), (b) => pad(b.toString(16), 2)).join(' ');
      return 'binary, ' + p.bytes.length + ' bytes: ' + head + (p.bytes.length > 12 ? ' …' : '');
    }
    if (p.kind === 'none') return '';
    const one = p.text.replace(/\s+/g, ' ');
    return one.length > limit ? one.slice(0, limit) + '…' : one;
  }

  function payloadKindLabel(p) {
    if (p.kind === 'binary') return 'binary · ' + p.bytes.length + ' bytes';
    if (p.kind === 'json') return 'JSON · ' + new TextEncoder().encode(p.text).length + ' bytes';
    if (p.kind === 'text') return 'text · ' + new TextEncoder().encode(p.text).length + ' bytes';
    return '';
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, kind, message) {
      super(message);
      this.status = status;
      this.kind = kind;
    }
  }

  const state = {
    session: null, // {role, csrf}
    renderSeq: 0,
    refreshTimer: null,
    chartQueue: '',
    navOpen: false,
  };

  function isAdmin() {
    return !!state.session && state.session.role === 'admin';
  }

  async function api(method, path, body) {
    const opts = {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    };
    if (method !== 'GET' && method !== 'HEAD') {
      opts.headers['Content-Type'] = 'application/json';
      if (state.session && state.session.csrf) opts.headers['X-CSRF-Token'] = state.session.csrf;
      opts.body = JSON.stringify(body === undefined ? {} : body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, 'network', 'Cannot reach the ferry server (' + (e && e.message ? e.message : e) + ').');
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!res.ok) {
      const err = (data && typeof data === 'object' && data.error) || {};
      let message = typeof err.message === 'string' && err.message ? err.message : res.status + ' ' + res.statusText;
      if (res.status === 429 && res.headers.get('Retry-After')) {
        message += ' (retry after ' + res.headers.get('Retry-After') + ' s)';
      }
      const e = new ApiError(res.status, typeof err.kind === 'string' ? err.kind : 'http_' + res.status, message);
      if (res.status === 401 && path !== 'api/login' && path !== 'api/session') {
        onUnauthenticated();
      }
      throw e;
    }
    return data;
  }

  function listOf(data, key) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data[key])) return data[key];
    return [];
  }

  function onUnauthenticated() {
    if (!state.session) return;
    state.session = null;
    stopRefresh();
    renderLogin('Your session has ended. Sign in again.');
  }

  // ------------------------------------------------------------------ banners and dialogs

  function bannerArea() {
    return document.getElementById('banners');
  }

  function showError(err) {
    const area = bannerArea();
    if (!area) return;
    if (err instanceof ApiError && err.status === 401) return; // handled by the login screen
    const kind = err && err.kind ? err.kind : 'error';
    const message = err && err.message ? err.message : String(err);
    const old = area.querySelector('[data-test="error-banner"]');
    if (old) old.remove();
    area.appendChild(h('div', { class: 'banner banner-error', role: 'alert', test: 'error-banner' },
      h('span', { class: 'banner-kind' }, kind),
      h('span', { class: 'banner-text', test: 'error-message' }, message),
      h('button', { type: 'button', class: 'banner-close', 'aria-label': 'Dismiss', onclick: (ev) => ev.target.closest('.banner').remove() }, '×')));
  }

  function showNotice(text) {
    const area = bannerArea();
    if (!area) return;
    const old = area.querySelector('[data-test="notice"]');
    if (old) old.remove();
    const el = h('div', { class: 'banner banner-notice', role: 'status', test: 'notice', 'data-at': Date.now() },
      h('span', { class: 'banner-text' }, text),
      h('button', { type: 'button', class: 'banner-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
    area.appendChild(el);
    setTimeout(() => el.remove(), 6000);
  }

  // On navigation: errors belong to the page that had them; notices expire on their own.
  function clearErrors() {
    const area = bannerArea();
    if (!area) return;
    const old = area.querySelector('[data-test="error-banner"]');
    if (old) old.remove();
    for (const n of area.querySelectorAll('[data-test="notice"]')) {
      if (Date.now() - Number(n.getAttribute('data-at')) > 700) n.remove();
    }
  }

  // A modal dialog. `build(close)` returns the body; resolves with what close() was given.
  function openDialog(title, build, opts) {
    return new Promise((resolve) => {
      const dlg = h('dialog', { class: ['dialog', opts && opts.wide ? 'dialog-wide' : null], test: 'dialog' });
      let done = false;
      const close = (result) => {
        if (done) return;
        done = true;
        if (dlg.open) dlg.close();
        dlg.remove();
        resolve(result);
      };
      dlg.addEventListener('cancel', (ev) => {
        ev.preventDefault();
        close(null);
      });
      append(dlg, [h('h2', { class: 'dialog-title' }, title), build(close)]);
      document.body.appendChild(dlg);
      dlg.showModal();
      const first = dlg.querySelector('input, textarea');
      if (first) first.focus();
    });
  }

  // Confirm: resolves true/false. With `typed`, the user must type that text first.
  function confirmDialog(title, message, opts) {
    const o = opts || {};
    return openDialog(title, (close) => {
      const ok = h('button', { type: 'submit', class: ['btn', o.danger ? 'btn-danger' : 'btn-primary'], test: 'confirm-ok' }, o.okLabel || 'Confirm');
      const parts = [h('p', { class: 'dialog-message' }, message)];
      let input = null;
      if (o.typed !== undefined) {
        ok.disabled = true;
        input = h('input', {
          type: 'text', class: 'input', autocomplete: 'off', spellcheck: 'false', test: 'confirm-input',
          'aria-label': 'Type ' + o.typed + ' to confirm',
          oninput: () => { ok.disabled = input.value !== o.typed; },
        });
        parts.push(h('label', { class: 'field' },
          h('span', { class: 'field-label' }, 'Type ', h('code', null, o.typed), ' to confirm'), input));
      }
      return h('form', {
        class: 'dialog-body',
        onsubmit: (ev) => {
          ev.preventDefault();
          if (input && input.value !== o.typed) return;
          close(true);
        },
      }, parts, h('div', { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn', test: 'confirm-cancel', onclick: () => close(false) }, 'Cancel'),
        ok));
    }).then((r) => r === true);
  }

  // Runs an action with a button disabled meanwhile; errors go to the banner.
  async function act(button, fn) {
    if (button) button.disabled = true;
    try {
      return await fn();
    } catch (e) {
      showError(e);
      return undefined;
    } finally {
      if (button && button.isConnected) button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ shell, login, router

  const NAV = [
    ['overview', 'Overview'],
    ['queues', 'Queues'],
    ['search', 'Search'],
    ['topics', 'Topics'],
    ['consumers', 'Consumers'],
    ['audit', 'Audit log'],
    ['alerts', 'Alerts'],
  ];

  function root() {
    return document.getElementById('app');
  }

  function renderLogin(message) {
    stopRefresh();
    document.body.classList.remove('signed-in');
    const app = root();
    clear(app);
    const input = h('input', {
      type: 'password', id: 'login-token', class: 'input', autocomplete: 'off', spellcheck: 'false',
      required: true, placeholder: 'ferry token', test: 'login-token',
    });
    const error = h('p', { class: 'login-error', role: 'alert', test: 'login-error', hidden: !message }, message || '');
    const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', test: 'login-submit' }, 'Sign in');
    const form = h('form', {
      class: 'login-card', test: 'login-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        try {
          const data = await api('POST', 'api/login', { token: input.value.trim() });
          input.value = '';
          state.session = { role: data.role, csrf: data.csrf, actor: data.actor };
          renderApp();
        } catch (e) {
          error.textContent = e.status === 401 ? 'That token is not valid.' : e.kind + ': ' + e.message;
          error.hidden = false;
          input.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('div', { class: 'login-brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'ferry'),
    h('p', { class: 'muted' }, 'Paste a token to open the dashboard. ', h('code', null, 'ferry serve'),
      ' prints one when it starts without a configured token.'),
    h('label', { class: 'field', for: 'login-token' }, h('span', { class: 'field-label' }, 'Token'), input),
    error,
    submit);
    app.appendChild(h('div', { class: 'login-wrap' }, form));
    input.focus();
  }

  function renderShell() {
    document.body.classList.add('signed-in');
    const app = root();
    clear(app);
    const nav = h('nav', { class: 'nav', id: 'nav', test: 'nav', 'aria-label': 'Main' },
      NAV.map(([key, label]) => h('a', {
        href: '#/' + key, class: 'nav-link', 'data-nav': key, test: 'nav-' + key,
        onclick: () => setNavOpen(false),
      }, label)));
    const toggle = h('button', {
      type: 'button', class: 'nav-toggle', test: 'nav-toggle', 'aria-controls': 'nav', 'aria-expanded': 'false',
      onclick: () => setNavOpen(!state.navOpen),
    }, h('span', { class: 'burger', 'aria-hidden': 'true' }), h('span', { class: 'sr-only' }, 'Menu'));
    const header = h('header', { class: 'topbar', id: 'topbar' },
      h('a', { href: '#/overview', class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'ferry'),
      toggle,
      nav,
      h('div', { class: 'session' },
        state.session.actor && state.session.actor !== state.session.role ? h('span', { class: 'actor', test: 'actor', title: 'Signed in as' }, String(state.session.actor)) : null,
        h('span', { class: ['role', 'role-' + state.session.role], test: 'role', title: 'Your role' }, state.session.role),
        h('button', {
          type: 'button', class: 'btn btn-small btn-ghost', test: 'logout',
          onclick: async (ev) => {
            await act(ev.currentTarget, async () => {
              try {
                await api('POST', 'api/logout');
              } catch (e) {
                if (e.status !== 401) throw e;
              }
              state.session = null;
              history.replaceState(null, '', location.pathname + location.search);
              renderLogin('Signed out.');
            });
          },
        }, 'Sign out')));
    app.appendChild(header);
    app.appendChild(h('div', { class: 'banners', id: 'banners', 'aria-live': 'polite' }));
    app.appendChild(h('main', { class: 'main', id: 'main', test: 'main' }));
  }

  function setNavOpen(open) {
    state.navOpen = open;
    const header = document.getElementById('topbar');
    if (!header) return;
    header.classList.toggle('nav-open', open);
    const t = header.querySelector('.nav-toggle');
    if (t) t.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  function renderApp() {
    renderShell();
    route();
  }

  function parseHash() {
    let raw = location.hash.replace(/^#\/?/, '');
    let query = '';
    const qi = raw.indexOf('?');
    if (qi >= 0) {
      query = raw.slice(qi + 1);
      raw = raw.slice(0, qi);
    }
    const parts = raw.split('/').filter((x) => x !== '').map((x) => {
      try {
        return decodeURIComponent(x);
      } catch (_) {
        return x;
      }
    });
    return { parts, params: new URLSearchParams(query) };
  }

  function stopRefresh() {
    if (state.refreshTimer) clearInterval(state.refreshTimer);
    state.refreshTimer = null;
  }

  const ROUTES = {
    overview: { n: 0, view: viewOverview, nav: 'overview' },
    queues: { n: 0, view: viewQueues, nav: 'queues' },
    queue: { n: 1, view: viewQueue, nav: 'queues' },
    dlq: { n: 1, view: viewDeadLetters, nav: 'queues' },
    message: { n: 2, view: viewMessage, nav: 'queues' },
    search: { n: 0, view: viewSearch, nav: 'search' },
    topics: { n: 0, view: viewTopics, nav: 'topics' },
    consumers: { n: 0, view: viewConsumers, nav: 'consumers' },
    audit: { n: 0, view: viewAudit, nav: 'audit' },
    alerts: { n: 0, view: viewAlerts, nav: 'alerts' },
  };

  async function route() {
    if (!state.session) {
      renderLogin();
      return;
    }
    if (!document.getElementById('main')) renderShell();
    stopRefresh();
    clearErrors();
    setNavOpen(false);
    const seq = ++state.renderSeq;
    const { parts, params } = parseHash();
    let name = parts[0] || 'overview';
    let args = parts.slice(1);
    if (name === 'queues' && args.length === 1) name = 'queue';
    const r = ROUTES[name];
    const main = document.getElementById('main');
    for (const a of document.querySelectorAll('.nav-link')) {
      a.classList.toggle('active', !!r && a.getAttribute('data-nav') === r.nav);
    }
    if (!r || args.length !== r.n) {
      clear(main);
      main.appendChild(h('section', { class: 'page', test: 'page-not-found' },
        h('h1', null, 'Not found'),
        h('p', null, 'There is no page here. ', h('a', { href: '#/overview' }, 'Back to the overview'), '.')));
      return;
    }
    main.setAttribute('aria-busy', 'true');
    const ctx = {
      params,
      alive: () => seq === state.renderSeq && !!state.session,
      reload: () => { if (seq === state.renderSeq) route(); },
      setRefresh: (fn) => {
        stopRefresh();
        let failing = false;
        state.refreshTimer = setInterval(async () => {
          if (document.hidden || seq !== state.renderSeq || !state.session) return;
          try {
            await fn();
            failing = false;
          } catch (e) {
            if (!failing) showError(e);
            failing = true;
          }
        }, REFRESH_MS);
      },
    };
    let page;
    try {
      page = await r.view(ctx, ...args);
    } catch (e) {
      if (!ctx.alive()) return;
      if (e instanceof ApiError && e.status === 401) return;
      page = h('section', { class: 'page' }, h('h1', null, 'Could not load this page'),
        h('p', { class: 'muted' }, 'The server answered with an error; see the banner above.'));
      showError(e);
    }
    if (!ctx.alive()) return;
    main.removeAttribute('aria-busy');
    clear(main);
    append(main, page);
    window.scrollTo(0, 0);
  }

  // ------------------------------------------------------------------ shared widgets

  function table(columns, rows, opts) {
    const o = opts || {};
    return h('div', { class: 'table-wrap', test: o.wrapTest },
      h('table', { class: ['table', o.className], test: o.test },
        h('thead', null, h('tr', null, columns.map((c) =>
          h('th', { class: c.className, scope: 'col' }, c.label)))),
        h('tbody', null, rows.length ? rows : h('tr', { class: 'empty-row' },
          h('td', { colspan: columns.length, class: 'empty' }, o.empty || 'Nothing here.')))));
  }

  function pageHeader(title, sub, actions) {
    return h('div', { class: 'page-header' },
      h('div', { class: 'page-title' }, h('h1', null, title), sub ? h('div', { class: 'page-sub' }, sub) : null),
      actions && actions.length ? h('div', { class: 'page-actions' }, actions) : null);
  }

  function statCard(label, value, test, extra) {
    return h('div', { class: ['stat', extra && extra.className] },
      h('div', { class: 'stat-label' }, label),
      h('div', { class: 'stat-value', test }, value),
      extra && extra.foot ? h('div', { class: 'stat-foot' }, extra.foot) : null);
  }

  function badge(text, kind, test) {
    return h('span', { class: ['badge', kind ? 'badge-' + kind : null], test }, text);
  }

  function pausedBadge(paused) {
    return paused ? badge('paused', 'warn', 'paused') : badge('active', 'ok', 'active');
  }

  function readOnlyNote(what) {
    return h('p', { class: 'note', test: 'read-only-note' }, 'Your role is read-only: an admin token is needed for ', what, '.');
  }

  // `next` (optional): the server's next_offset (null on the last page).
  function pager(offset, limit, count, total, go, next) {
    const from = count ? offset + 1 : 0;
    const to = offset + count;
    const hasNext = next !== undefined ? next !== null : total !== undefined && total !== null ? to < total : count >= limit;
    const nextOffset = typeof next === 'number' ? next : offset + limit;
    return h('div', { class: 'pager', test: 'pager' },
      h('span', { class: 'muted' }, count ? 'Showing ' + fmtNum(from) + '–' + fmtNum(to) : 'Nothing on this page',
        total !== undefined && total !== null ? ' of ' + fmtNum(total) : ''),
      h('button', { type: 'button', class: 'btn btn-small', test: 'page-prev', disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)) }, '← Previous'),
      h('button', { type: 'button', class: 'btn btn-small', test: 'page-next', disabled: !hasNext, onclick: () => go(nextOffset) }, 'Next →'));
  }

  function intParam(params, key, dflt, max) {
    const v = parseInt(params.get(key) || '', 10);
    if (!isFinite(v) || v < 0) return dflt;
    return max ? Math.min(v, max) : v;
  }

  function kvList(obj, test) {
    const keys = Object.keys(obj || {});
    if (!keys.length) return h('p', { class: 'muted' }, 'None.');
    return h('dl', { class: 'kv', test }, keys.map((k) => [
      h('dt', null, humanKey(k)),
      h('dd', null, fmtValue(k, obj[k])),
    ]));
  }

  // ------------------------------------------------------------------ charts (SVG via DOM)

  const CHART_W = 420;
  const CHART_H = 190;
  const PAD = { l: 44, r: 10, t: 10, b: 24 };

  // A round axis maximum and how many grid steps divide it into round numbers.
  function niceAxis(v, integer) {
    if (integer && v <= 4) return { max: 4, ticks: 4 };
    if (!(v > 0)) return { max: 1, ticks: 4 };
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const [m, ticks] of [[1, 4], [2, 4], [2.5, 5], [4, 4], [5, 5], [8, 4], [10, 5]]) {
      if (m * p >= v) return { max: m * p, ticks };
    }
    return { max: 10 * p, ticks: 5 };
  }

  function shortNum(v) {
    if (v >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
    if (v >= 1e3) return +(v / 1e3).toFixed(1) + 'k';
    return +v.toFixed(v < 10 && v % 1 ? 1 : 0) + '';
  }

  // series: [{label, points: [[t, v|null]]}]
  function lineChart(title, series, opts) {
    const o = opts || {};
    const all = [];
    for (const se of series) for (const p of se.points) if (p[1] !== null && isFinite(p[1])) all.push(p);
    const svg = s('svg', {
      class: 'chart-svg', viewBox: '0 0 ' + CHART_W + ' ' + CHART_H, role: 'img',
      'aria-label': title, preserveAspectRatio: 'xMidYMid meet',
    });
    const iw = CHART_W - PAD.l - PAD.r;
    const ih = CHART_H - PAD.t - PAD.b;
    const legend = h('ul', { class: 'legend' });
    if (!all.length) {
      svg.appendChild(s('rect', { x: PAD.l, y: PAD.t, width: iw, height: ih, class: 'chart-frame' }));
      svg.appendChild(s('text', { x: CHART_W / 2, y: CHART_H / 2, class: 'chart-empty', 'text-anchor': 'middle' },
        o.emptyText || 'Waiting for samples…'));
    } else {
      let t0 = Infinity;
      let t1 = -Infinity;
      let vmax = 0;
      for (const [t, v] of all) {
        t0 = Math.min(t0, t);
        t1 = Math.max(t1, t);
        vmax = Math.max(vmax, v);
      }
      if (o.xDomain && o.xDomain[1] > o.xDomain[0]) {
        t0 = Math.min(t0, o.xDomain[0]);
        t1 = Math.max(t1, o.xDomain[1]);
      }
      if (t1 === t0) {
        t0 -= 1000;
        t1 += 1000;
      }
      const axis = o.yMax !== undefined ? { max: o.yMax, ticks: 4 } : niceAxis(vmax, o.integer);
      const ymax = axis.max;
      const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * iw;
      const y = (v) => PAD.t + ih - (Math.min(v, ymax) / ymax) * ih;
      for (let i = 0; i <= axis.ticks; i++) {
        const v = (ymax * i) / axis.ticks;
        const yy = y(v);
        svg.appendChild(s('line', { x1: PAD.l, x2: PAD.l + iw, y1: yy, y2: yy, class: i === 0 ? 'chart-axis' : 'chart-grid' }));
        svg.appendChild(s('text', { x: PAD.l - 6, y: yy + 4, class: 'chart-label', 'text-anchor': 'end' },
          o.yFormat ? o.yFormat(v) : shortNum(v)));
      }
      svg.appendChild(s('text', { x: PAD.l, y: CHART_H - 6, class: 'chart-label', 'text-anchor': 'start' }, fmtClock(t0)));
      svg.appendChild(s('text', { x: PAD.l + iw, y: CHART_H - 6, class: 'chart-label', 'text-anchor': 'end' }, fmtClock(t1)));
      series.forEach((se, i) => {
        const cls = 'series-' + (i % 8);
        let seg = [];
        const flush = () => {
          if (seg.length === 1) {
            svg.appendChild(s('circle', { cx: seg[0][0], cy: seg[0][1], r: 2.5, class: ['chart-dot', cls] }));
          } else if (seg.length > 1) {
            svg.appendChild(s('polyline', {
              points: seg.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '),
              class: ['chart-line', cls],
            }, s('title', null, se.label)));
          }
          seg = [];
        };
        for (const [t, v] of se.points) {
          if (v === null || !isFinite(v)) flush();
          else seg.push([x(t), y(v)]);
        }
        flush();
      });
    }
    series.forEach((se, i) => {
      let last = null;
      for (const p of se.points) if (p[1] !== null && isFinite(p[1])) last = p[1];
      legend.appendChild(h('li', null,
        h('span', { class: ['swatch', 'series-' + (i % 8)], 'aria-hidden': 'true' }),
        se.label + ' ',
        h('strong', null, last === null ? '—' : (o.valueFormat || fmtNum)(last))));
    });
    return h('figure', { class: 'chart', test: o.test },
      h('figcaption', { class: 'chart-title' }, title), svg, legend);
  }

  const COUNTERS = ['ready', 'delayed', 'in_flight', 'dead', 'acked_total', 'failed_total', 'sent_total'];

  // Sum (queue === '') or pick one queue in each sample: [{at, ready, ..., sent_total}]
  function samplesFor(seriesData, queue) {
    const out = [];
    const sorted = (seriesData || []).filter((x) => x && isFinite(Number(x.at))).slice()
      .sort((a, b) => Number(a.at) - Number(b.at));
    for (const smp of sorted) {
      const row = { at: Number(smp.at) };
      for (const k of COUNTERS) row[k] = 0;
      const qs = smp.queues || {};
      for (const name of Object.keys(qs)) {
        if (queue && name !== queue) continue;
        for (const k of COUNTERS) row[k] += Number(qs[name][k]) || 0;
      }
      out.push(row);
    }
    return out;
  }

  // Per-interval rates from consecutive samples: [{at, sent, acked, failed, ratio}]
  function ratesOf(samples) {
    const out = [];
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      const dt = (b.at - a.at) / 1000;
      if (!(dt > 0)) continue;
      const d = (k) => Math.max(0, b[k] - a[k]);
      const acked = d('acked_total');
      const failed = d('failed_total');
      out.push({
        at: b.at,
        sent: d('sent_total') / dt,
        acked: acked / dt,
        failed: failed / dt,
        ratio: acked + failed > 0 ? failed / (acked + failed) : null,
      });
    }
    return out;
  }

  // ------------------------------------------------------------------ views

  async function viewOverview(ctx) {
    const data = await api('GET', 'api/overview');
    const body = h('div', { class: 'overview-body' });
    const select = h('select', {
      class: 'input input-inline', test: 'chart-queue', 'aria-label': 'Charts for',
      onchange: () => {
        state.chartQueue = select.value;
        fill(lastData);
      },
    });
    let lastData = data;
    const fill = (d) => {
      lastData = d;
      const queues = (d.queues || []).slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
      const names = queues.map((q) => String(q.name));
      if (state.chartQueue && !names.includes(state.chartQueue)) state.chartQueue = '';
      clear(select);
      append(select, [h('option', { value: '' }, 'All queues'), names.map((n) => h('option', { value: n }, n))]);
      select.value = state.chartQueue;
      clear(body);
      const tot = { ready: 0, delayed: 0, in_flight: 0, dead: 0 };
      for (const q of queues) for (const k of Object.keys(tot)) tot[k] += Number((q.stats || {})[k]) || 0;
      append(body, h('div', { class: 'stats' },
        statCard('Queues', fmtNum(queues.length), 'total-queues'),
        statCard('Ready', fmtNum(tot.ready), 'total-ready'),
        statCard('Delayed', fmtNum(tot.delayed), 'total-delayed'),
        statCard('In flight', fmtNum(tot.in_flight), 'total-in-flight'),
        statCard('Dead letters', fmtNum(tot.dead), 'total-dead', { className: tot.dead ? 'stat-alert' : null })));
      const rows = queues.map((q) => {
        const st = q.stats || {};
        const rates = ratesOf(samplesFor(d.series, q.name));
        const last = rates.length ? rates[rates.length - 1] : null;
        return h('tr', { test: 'overview-queue', 'data-queue': q.name },
          h('td', null, h('a', { href: link('queues', q.name), test: 'queue-link' }, q.name)),
          h('td', { class: 'num' }, fmtNum(st.ready)),
          h('td', { class: 'num' }, fmtNum(st.delayed)),
          h('td', { class: 'num' }, fmtNum(st.in_flight)),
          h('td', { class: 'num' }, st.dead ? h('a', { href: link('dlq', q.name), class: 'dead-count', test: 'overview-dead-link' }, fmtNum(st.dead)) : fmtNum(st.dead)),
          h('td', { class: 'num' }, last ? fmtRate(last.sent) : '—'),
          h('td', { class: 'num' }, last ? fmtRate(last.acked) : '—'),
          h('td', { class: 'num' }, last ? fmtPercent(last.ratio) : '—'),
          h('td', null, pausedBadge(q.paused)));
      });
      append(body, h('section', { class: 'card' },
        h('h2', null, 'Queues'),
        table([
          { label: 'Queue' }, { label: 'Ready', className: 'num' }, { label: 'Delayed', className: 'num' },
          { label: 'In flight', className: 'num' }, { label: 'Dead', className: 'num' },
          { label: 'Sent/s', className: 'num' }, { label: 'Acked/s', className: 'num' },
          { label: 'Failures', className: 'num' }, { label: 'State' },
        ], rows, { test: 'overview-queues', empty: 'No queues yet. Create one on the Queues page or with `ferry queue create NAME`.' })));
      const samples = samplesFor(d.series, state.chartQueue);
      const rates = ratesOf(samples);
      const pts = (arr, k) => arr.map((r) => [r.at, r[k]]);
      const xDomain = samples.length ? [samples[0].at, samples[samples.length - 1].at] : null;
      append(body, h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, 'Over time'),
          h('label', { class: 'inline-field' }, h('span', { class: 'muted' }, 'Charts for '), select)),
        h('div', { class: 'charts' },
          lineChart('Depth', [
            { label: 'ready', points: pts(samples, 'ready') },
            { label: 'delayed', points: pts(samples, 'delayed') },
            { label: 'in flight', points: pts(samples, 'in_flight') },
            { label: 'dead', points: pts(samples, 'dead') },
          ], { test: 'chart-depth', xDomain, integer: true }),
          lineChart('Rates (messages/s)', [
            { label: 'sent', points: pts(rates, 'sent') },
            { label: 'acked', points: pts(rates, 'acked') },
            { label: 'failed', points: pts(rates, 'failed') },
          ], { test: 'chart-rates', xDomain, valueFormat: fmtRate, emptyText: 'Needs two samples…' }),
          lineChart('Failure ratio', [
            { label: 'failed / (acked + failed)', points: pts(rates, 'ratio') },
          ], { test: 'chart-failures', xDomain, yMax: 1, yFormat: (v) => Math.round(v * 100) + '%', valueFormat: fmtPercent, emptyText: 'No settled messages yet' })),
        h('p', { class: 'muted small' }, samples.length
          ? fmtNum(samples.length) + ' samples from ' + fmtTime(samples[0].at) + '; rates are computed from the differences between samples.'
          : 'The server samples the queues every few seconds.')));
    };
    fill(data);
    ctx.setRefresh(async () => {
      const d = await api('GET', 'api/overview');
      if (ctx.alive()) fill(d);
    });
    return h('section', { class: 'page', test: 'page-overview' },
      pageHeader('Overview', data.backend ? h('span', null, 'backend ', h('code', { test: 'backend' }, String(data.backend))) : null),
      body);
  }

  async function viewQueues(ctx) {
    const data = await api('GET', 'api/queues');
    const queues = listOf(data, 'queues').slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const rows = queues.map((q) => {
      const st = q.stats || {};
      const op = q.options || {};
      return h('tr', { test: 'queue-row', 'data-queue': q.name },
        h('td', null, h('a', { href: link('queues', q.name), test: 'queue-link' }, q.name)),
        h('td', { class: 'num' }, fmtNum(st.ready)),
        h('td', { class: 'num' }, fmtNum(st.delayed)),
        h('td', { class: 'num' }, fmtNum(st.in_flight)),
        h('td', { class: 'num' }, h('a', { href: link('dlq', q.name), test: 'dlq-link' }, fmtNum(st.dead))),
        h('td', { class: 'num' }, op.max_attempts !== undefined ? fmtNum(op.max_attempts) : '—'),
        h('td', { class: 'num' }, op.lease_ms !== undefined ? fmtDuration(op.lease_ms) : '—'),
        h('td', null, pausedBadge(q.paused)));
    });
    let create = null;
    if (isAdmin()) {
      const name = h('input', { class: 'input', name: 'name', required: true, placeholder: 'emails', test: 'create-queue-name', autocomplete: 'off' });
      const delay = h('input', { class: 'input', type: 'number', min: 0, name: 'default_delay_ms', placeholder: '0' });
      const attempts = h('input', { class: 'input', type: 'number', min: 1, name: 'max_attempts', placeholder: 'default' });
      const lease = h('input', { class: 'input', type: 'number', min: 1, name: 'lease_ms', placeholder: 'default' });
      const submit = h('button', { type: 'submit', class: 'btn btn-primary', test: 'create-queue-submit' }, 'Create or update');
      create = h('section', { class: 'card' }, h('h2', null, 'Create a queue'),
        h('form', {
          class: 'form-grid', test: 'create-queue-form',
          onsubmit: (ev) => {
            ev.preventDefault();
            const body = { name: name.value.trim() };
            if (delay.value !== '') body.default_delay_ms = Number(delay.value);
            if (attempts.value !== '') body.max_attempts = Number(attempts.value);
            if (lease.value !== '') body.lease_ms = Number(lease.value);
            act(submit, async () => {
              await api('POST', 'api/queues', body);
              showNotice('Queue ' + body.name + ' saved.');
              location.hash = link('queues', body.name);
            });
          },
        },
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Name'), name),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Default delay (ms)'), delay),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Max attempts'), attempts),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Lease (ms)'), lease),
        h('div', { class: 'form-actions' }, submit)));
    }
    return h('section', { class: 'page', test: 'page-queues' },
      pageHeader('Queues', fmtNum(queues.length) + ' queue' + (queues.length === 1 ? '' : 's')),
      h('section', { class: 'card' }, table([
        { label: 'Queue' }, { label: 'Ready', className: 'num' }, { label: 'Delayed', className: 'num' },
        { label: 'In flight', className: 'num' }, { label: 'Dead', className: 'num' },
        { label: 'Max attempts', className: 'num' }, { label: 'Lease', className: 'num' }, { label: 'State' },
      ], rows, { test: 'queues-table', empty: 'No queues yet.' })),
      create);
  }

  function parseHeaderLines(text) {
    const headers = {};
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line) continue;
      const i = line.indexOf(':');
      if (i <= 0) throw new ApiError(0, 'invalid_input', 'A header line must look like "name: value": ' + line);
      headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    return headers;
  }

  async function viewQueue(ctx, name) {
    const q = await api('GET', apiPath('queues', name));
    const stats = h('div', { class: 'stats' });
    const stateBox = h('span', null);
    const actions = h('div', { class: 'page-actions' });
    const fillStats = (qq) => {
      const st = qq.stats || {};
      clear(stats);
      append(stats, [
        statCard('Ready', fmtNum(st.ready), 'stat-ready'),
        statCard('Delayed', fmtNum(st.delayed), 'stat-delayed'),
        statCard('In flight', fmtNum(st.in_flight), 'stat-in-flight'),
        statCard('Dead letters', h('a', { href: link('dlq', name), test: 'stat-dead-link' }, fmtNum(st.dead)), 'stat-dead',
          { className: st.dead ? 'stat-alert' : null }),
      ]);
      clear(stateBox);
      stateBox.appendChild(pausedBadge(qq.paused));
      clear(actions);
      append(actions, [
        h('a', { href: link('dlq', name), class: 'btn', test: 'dlq-link' }, 'Dead letters'),
        h('a', { href: withQuery('#/search', { queue: name }), class: 'btn', test: 'search-link' }, 'Search'),
        isAdmin() ? (qq.paused
          ? h('button', { type: 'button', class: 'btn btn-primary', test: 'queue-resume', onclick: (ev) => pauseResume(ev.currentTarget, 'resume') }, 'Resume')
          : h('button', { type: 'button', class: 'btn btn-warn', test: 'queue-pause', onclick: (ev) => pauseResume(ev.currentTarget, 'pause') }, 'Pause')) : null,
      ]);
    };
    const refresh = async () => {
      const qq = await api('GET', apiPath('queues', name));
      if (ctx.alive()) fillStats(qq);
    };
    const pauseResume = (btn, what) => act(btn, async () => {
      await api('POST', apiPath('queues', name, what));
      showNotice(what === 'pause' ? 'Paused ' + name + ': consumers hold off.' : 'Resumed ' + name + '.');
      await refresh();
    });
    fillStats(q);
    ctx.setRefresh(refresh);

    let send = null;
    let danger = null;
    if (isAdmin()) {
      const payload = h('textarea', { class: 'input mono', rows: 5, required: true, test: 'send-payload', placeholder: '{"to": "ada@example.com"}', spellcheck: 'false' });
      const headers = h('textarea', { class: 'input mono', rows: 2, test: 'send-headers', placeholder: 'tenant: acme', spellcheck: 'false' });
      const id = h('input', { class: 'input', test: 'send-id', placeholder: 'generated (UUIDv7)', autocomplete: 'off' });
      const delay = h('input', { class: 'input', type: 'number', min: 0, test: 'send-delay', placeholder: q.options && q.options.default_delay_ms !== undefined ? String(q.options.default_delay_ms) : '0' });
      const priority = h('input', { class: 'input', type: 'number', test: 'send-priority', placeholder: '0' });
      const result = h('p', { class: 'muted small field-wide send-result', test: 'send-result' });
      const submit = h('button', { type: 'submit', class: 'btn btn-primary', test: 'send-submit' }, 'Send');
      send = h('section', { class: 'card' }, h('h2', null, 'Send a test message'),
        h('form', {
          class: 'form-grid', test: 'send-form',
          onsubmit: (ev) => {
            ev.preventDefault();
            act(submit, async () => {
              const msg = { payload: payload.value };
              const hd = parseHeaderLines(headers.value);
              if (Object.keys(hd).length) msg.headers = hd;
              if (id.value.trim()) msg.id = id.value.trim();
              if (delay.value !== '') msg.delay_ms = Number(delay.value);
              if (priority.value !== '') msg.priority = Number(priority.value);
              const r = await api('POST', apiPath('queues', name, 'messages'), { messages: [msg] });
              const ids = (r && r.ids) || [];
              const dups = !r ? 0 : Array.isArray(r.duplicates) ? r.duplicates.length : Number(r.duplicates) || 0;
              clear(result);
              append(result, ['Sent: ', ids.map((x, i) => [i ? ', ' : '', h('a', { href: link('message', name, x) }, x)]),
                dups ? ' (duplicate id, not enqueued again)' : '']);
              showNotice(dups ? 'That id was already sent; nothing new was enqueued.' : 'Sent 1 message to ' + name + '.');
              await refresh();
            });
          },
        },
        h('label', { class: 'field field-wide' }, h('span', { class: 'field-label' }, 'Payload (sent as UTF-8 text)'), payload),
        h('label', { class: 'field field-wide' }, h('span', { class: 'field-label' }, 'Headers (one "name: value" a line)'), headers),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Message id'), id),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Delay (ms)'), delay),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Priority'), priority),
        h('div', { class: 'form-actions' }, submit),
        result));
      const del = h('button', {
        type: 'button', class: 'btn btn-danger', test: 'queue-delete',
        onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ok = await confirmDialog('Delete queue ' + name + '?',
            'This deletes the queue with all its messages, dead letters and bindings. It cannot be undone.',
            { typed: name, danger: true, okLabel: 'Delete queue' });
          if (!ok) return;
          await act(btn, async () => {
            await api('DELETE', apiPath('queues', name));
            showNotice('Deleted queue ' + name + '.');
            location.hash = '#/queues';
          });
        },
      }, 'Delete queue…');
      danger = h('section', { class: 'card card-danger' }, h('h2', null, 'Danger zone'),
        h('p', { class: 'muted' }, 'Deleting a queue removes its messages, dead letters and bindings.'), del);
    }
    return h('section', { class: 'page', test: 'page-queue', 'data-queue': name },
      h('nav', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' / '),
      h('div', { class: 'page-header' },
        h('div', { class: 'page-title' }, h('h1', { test: 'queue-name' }, name), stateBox),
        actions),
      stats,
      h('section', { class: 'card' }, h('h2', null, 'Options'), kvList(q.options, 'queue-options')),
      send || readOnlyNote('sending, pausing and resuming'),
      danger);
  }

  function editDialog(queue, dl) {
    const p = payloadOf(dl);
    const binary = p.kind === 'binary';
    return openDialog('Edit and requeue', (close) => {
      const payload = h('textarea', {
        class: 'input mono', rows: 12, spellcheck: 'false', test: 'edit-payload',
        value: binary ? p.base64 : (p.kind === 'none' ? '' : p.text),
      });
      const headers = h('textarea', {
        class: 'input mono', rows: 4, spellcheck: 'false', test: 'edit-headers',
        value: JSON.stringify(dl.headers || {}, null, 2),
      });
      const err = h('p', { class: 'form-error', role: 'alert', hidden: true, test: 'edit-error' });
      const save = h('button', { type: 'submit', class: 'btn btn-primary', test: 'edit-save' }, 'Save and requeue');
      const format = p.kind === 'json' ? h('button', {
        type: 'button', class: 'btn btn-small', test: 'edit-format',
        onclick: () => {
          try {
            payload.value = JSON.stringify(JSON.parse(payload.value), null, 2);
          } catch (e) {
            err.textContent = 'Not valid JSON: ' + e.message;
            err.hidden = false;
          }
        },
      }, 'Format JSON') : null;
      return h('form', {
        class: 'dialog-body',
        onsubmit: async (ev) => {
          ev.preventDefault();
          err.hidden = true;
          let hd;
          try {
            hd = JSON.parse(headers.value || '{}');
            if (!hd || typeof hd !== 'object' || Array.isArray(hd)) throw new Error('headers must be a JSON object');
            for (const k of Object.keys(hd)) if (typeof hd[k] !== 'string') throw new Error('header ' + k + ' must be a string');
          } catch (e) {
            err.textContent = 'Headers: ' + e.message;
            err.hidden = false;
            return;
          }
          const body = binary ? { payload_base64: payload.value.replace(/\s+/g, '') } : { payload: payload.value };
          body.headers = hd;
          save.disabled = true;
          try {
            await api('PUT', apiPath('queues', queue, 'dead-letters', dl.id), body);
            close(true);
          } catch (e) {
            err.textContent = (e.kind || 'error') + ': ' + e.message;
            err.hidden = false;
          } finally {
            save.disabled = false;
          }
        },
      },
      h('p', { class: 'muted' }, 'Message ', h('code', null, dl.id), ' goes back to ', h('code', null, queue), ' with this payload and these headers, attempts reset.'),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, binary ? 'Payload (base64: the original is binary)' : 'Payload'), payload),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Headers (JSON object of strings)'), headers),
      err,
      h('div', { class: 'dialog-actions' },
        format,
        h('button', { type: 'button', class: 'btn', test: 'edit-cancel', onclick: () => close(false) }, 'Cancel'),
        save));
    }, { wide: true });
  }

  async function viewDeadLetters(ctx, name) {
    const params = ctx.params;
    const offset = intParam(params, 'offset', 0);
    const limit = intParam(params, 'limit', 50, 500) || 50;
    const reason = params.get('reason') || '';
    const text = params.get('text') || '';
    const [q, list] = await Promise.all([
      api('GET', apiPath('queues', name)),
      api('GET', apiPath('queues', name, 'dead-letters') + withQuery('', { offset, limit, reason, text })),
    ]);
    const items = listOf(list, 'dead_letters');
    const dead = Number((q.stats || {}).dead) || 0;
    const here = (over) => withQuery(link('dlq', name), Object.assign({ offset, limit: limit === 50 ? '' : limit, reason, text }, over));

    const selected = new Set();
    const admin = isAdmin();
    const selCount = h('span', { test: 'dlq-selected-count' }, '0');
    const needSel = [];
    const updateSel = () => {
      selCount.textContent = String(selected.size);
      for (const b of needSel) b.disabled = selected.size === 0;
      if (selectAll) {
        selectAll.checked = items.length > 0 && selected.size === items.length;
        selectAll.indeterminate = selected.size > 0 && selected.size < items.length;
      }
    };
    const selectAll = admin ? h('input', {
      type: 'checkbox', test: 'dlq-select-all', 'aria-label': 'Select all on this page',
      onchange: () => {
        for (const cb of document.querySelectorAll('[data-test="dlq-select"]')) {
          cb.checked = selectAll.checked;
          if (cb.checked) selected.add(cb.getAttribute('data-id'));
          else selected.delete(cb.getAttribute('data-id'));
        }
        updateSel();
      },
    }) : null;

    const doBulk = (btn, what, body, verb) => act(btn, async () => {
      const r = await api('POST', apiPath('queues', name, 'dead-letters', what), body);
      const n = r && r.count !== undefined ? r.count : 0;
      showNotice(verb + ' ' + fmtNum(n) + ' dead letter' + (n === 1 ? '' : 's') + '.');
      ctx.reload();
    });

    const reasons = new Set(items.map((d) => d.reason).filter(Boolean));
    const rows = items.map((d) => {
      const cb = admin ? h('input', {
        type: 'checkbox', test: 'dlq-select', 'data-id': d.id, 'aria-label': 'Select ' + d.id,
        onchange: () => {
          if (cb.checked) selected.add(d.id);
          else selected.delete(d.id);
          updateSel();
        },
      }) : null;
      return h('tr', { test: 'dlq-row', 'data-id': d.id },
        admin ? h('td', { class: 'check' }, cb) : null,
        h('td', { class: 'id-cell' }, h('a', { href: link('message', name, d.id), test: 'dlq-id', class: 'mono' }, d.id)),
        h('td', null, d.reason ? badge(d.reason, 'dead', 'dlq-reason') : '—'),
        h('td', { class: 'num' }, fmtNum(d.attempts)),
        h('td', { class: 'error-cell', title: d.last_error || '' }, h('span', { class: 'clip', test: 'dlq-error' }, d.last_error || '—')),
        h('td', { class: 'time' }, fmtTime(d.dead_at)),
        h('td', { class: 'payload-cell' }, h('div', { class: 'payload-preview mono', test: 'dlq-payload' }, payloadPreview(d, 200))),
        admin ? h('td', { class: 'actions-cell' }, h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'btn btn-small', test: 'dlq-requeue-one', onclick: (ev) => doBulk(ev.currentTarget, 'requeue', { ids: [d.id] }, 'Requeued') }, 'Requeue'),
          h('button', {
            type: 'button', class: 'btn btn-small', test: 'dlq-edit',
            onclick: async () => {
              if (await editDialog(name, d)) {
                showNotice('Edited and requeued ' + d.id + '.');
                ctx.reload();
              }
            },
          }, 'Edit…'))) : null);
    });

    const reasonInput = h('input', { class: 'input', name: 'reason', value: reason, list: 'dlq-reasons', placeholder: 'any reason', test: 'dlq-filter-reason', autocomplete: 'off' });
    const textInput = h('input', { class: 'input', name: 'text', value: text, placeholder: 'text in payload', test: 'dlq-filter-text', autocomplete: 'off' });
    const filter = h('form', {
      class: 'filters', test: 'dlq-filter',
      onsubmit: (ev) => {
        ev.preventDefault();
        location.hash = here({ offset: '', reason: reasonInput.value.trim(), text: textInput.value });
      },
    },
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Reason'), reasonInput,
      h('datalist', { id: 'dlq-reasons' }, Array.from(reasons, (r) => h('option', { value: r })))),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Payload contains'), textInput),
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'btn', test: 'dlq-filter-apply' }, 'Filter'),
      reason || text ? h('a', { href: link('dlq', name), class: 'btn btn-ghost', test: 'dlq-filter-clear' }, 'Clear') : null));

    let toolbar = null;
    if (admin) {
      const rq = h('button', {
        type: 'button', class: 'btn btn-primary', test: 'dlq-requeue-selected', disabled: true,
        onclick: (ev) => doBulk(ev.currentTarget, 'requeue', { ids: Array.from(selected) }, 'Requeued'),
      }, 'Requeue selected');
      const del = h('button', {
        type: 'button', class: 'btn btn-danger-outline', test: 'dlq-delete-selected', disabled: true,
        onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ids = Array.from(selected);
          const ok = await confirmDialog('Delete ' + ids.length + ' dead letter' + (ids.length === 1 ? '' : 's') + '?',
            'The selected messages are removed for good; they are not requeued.', { danger: true, okLabel: 'Delete' });
          if (ok) await doBulk(btn, 'delete', { ids }, 'Deleted');
        },
      }, 'Delete selected');
      needSel.push(rq, del);
      const all = h('button', {
        type: 'button', class: 'btn', test: 'dlq-requeue-all', disabled: dead === 0,
        onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ok = await confirmDialog('Requeue all dead letters of ' + name + '?',
            'All ' + fmtNum(dead) + ' dead letters go back to the queue (not only the ones shown or filtered).', { okLabel: 'Requeue all' });
          if (ok) await doBulk(btn, 'requeue', { all: true }, 'Requeued');
        },
      }, 'Requeue all');
      const purge = h('button', {
        type: 'button', class: 'btn btn-danger', test: 'dlq-purge', disabled: dead === 0,
        onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ok = await confirmDialog('Purge the dead letters of ' + name + '?',
            'This permanently deletes all ' + fmtNum(dead) + ' dead letters of this queue. They cannot be requeued afterwards.',
            { typed: name, danger: true, okLabel: 'Purge' });
          if (!ok) return;
          await act(btn, async () => {
            const r = await api('DELETE', apiPath('queues', name, 'dead-letters'));
            showNotice('Purged ' + fmtNum(r && r.count !== undefined ? r.count : 0) + ' dead letters.');
            ctx.reload();
          });
        },
      }, 'Purge…');
      toolbar = h('div', { class: 'toolbar', test: 'dlq-toolbar' },
        h('span', { class: 'muted' }, selCount, ' selected'), rq, del, h('span', { class: 'spacer' }), all, purge);
    }

    const columns = [
      admin ? { label: selectAll, className: 'check' } : null,
      { label: 'Message id' }, { label: 'Reason' }, { label: 'Attempts', className: 'num' },
      { label: 'Last error' }, { label: 'Dead since' }, { label: 'Payload' },
      admin ? { label: '' } : null,
    ].filter(Boolean);
    const page = h('section', { class: 'page', test: 'page-dlq', 'data-queue': name },
      h('nav', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' / ', h('a', { href: link('queues', name), test: 'crumb-queue' }, name), ' / '),
      pageHeader('Dead letters', h('span', null, h('strong', { test: 'dlq-count' }, fmtNum(dead)), ' in ', h('code', null, name))),
      h('section', { class: 'card' },
        filter,
        toolbar || readOnlyNote('requeueing, editing and purging'),
        table(columns, rows, { test: 'dlq-table', empty: reason || text ? 'No dead letter matches this filter.' : 'No dead letters. Good.' }),
        pager(offset, limit, items.length, reason || text ? null : dead, (o) => { location.hash = here({ offset: o || '' }); },
          list && 'next_offset' in list ? list.next_offset : undefined)));
    updateSel();
    return page;
  }

  function payloadBox(obj, test) {
    const p = payloadOf(obj);
    if (p.kind === 'none') return h('p', { class: 'muted' }, 'No payload.');
    const content = p.kind === 'binary' ? hexDump(p.bytes) : p.kind === 'json' ? p.pretty : p.text;
    const pre = h('pre', { class: ['payload', 'payload-' + p.kind], test: test || 'message-payload', 'data-kind': p.kind, tabindex: 0 }, content);
    return h('div', { class: 'payload-wrap' },
      h('div', { class: 'payload-meta' }, badge(payloadKindLabel(p), p.kind === 'binary' ? 'info' : null, 'payload-kind')),
      pre);
  }

  function headersTable(headers) {
    const keys = Object.keys(headers || {}).sort();
    return table([{ label: 'Header' }, { label: 'Value' }],
      keys.map((k) => h('tr', { test: 'header-row' }, h('td', { class: 'mono' }, k), h('td', { class: 'mono wrap' }, String(headers[k])))),
      { test: 'message-headers', empty: 'No headers.' });
  }

  function eventKind(ev) {
    const e = String(ev || '').toLowerCase();
    if (e.includes('dead')) return 'dead';
    if (e.includes('fail') || e.includes('retr') || e.includes('expire')) return 'warn';
    if (e.includes('ack') || e.includes('requeue')) return 'ok';
    return 'info';
  }

  function timeline(history) {
    const items = (history || []).slice().sort((a, b) => Number(a.at) - Number(b.at));
    if (!items.length) return h('p', { class: 'muted', test: 'history-empty' }, 'No history kept for this message (it may be older than the retention window).');
    return h('ol', { class: 'timeline', test: 'history' }, items.map((e) => h('li', { class: ['tl-item', 'tl-' + eventKind(e.event)], test: 'history-event' },
      h('div', { class: 'tl-head' },
        badge(String(e.event || 'event'), eventKind(e.event)),
        e.attempt ? h('span', { class: 'muted' }, ' attempt ', fmtNum(e.attempt)) : null,
        h('time', { class: 'tl-time' }, fmtTime(e.at))),
      e.detail ? h('div', { class: 'tl-detail mono' }, typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)) : null)));
  }

  async function viewMessage(ctx, queue, id) {
    const m = await api('GET', apiPath('queues', queue, 'messages', id));
    const dl = m.dead_letter || null;
    const hist = m.history || [];
    const last = hist.length ? hist.slice().sort((a, b) => Number(a.at) - Number(b.at))[hist.length - 1] : null;
    let actions = null;
    if (dl && isAdmin()) {
      actions = [
        h('button', {
          type: 'button', class: 'btn btn-primary', test: 'message-requeue',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('POST', apiPath('queues', queue, 'dead-letters', 'requeue'), { ids: [id] });
            showNotice('Requeued ' + id + '.');
            ctx.reload();
          }),
        }, 'Requeue'),
        h('button', {
          type: 'button', class: 'btn', test: 'message-edit',
          onclick: async () => {
            if (await editDialog(queue, dl)) {
              showNotice('Edited and requeued ' + id + '.');
              ctx.reload();
            }
          },
        }, 'Edit and requeue…'),
        h('button', {
          type: 'button', class: 'btn btn-danger-outline', test: 'message-delete',
          onclick: async (ev) => {
            const btn = ev.currentTarget;
            if (!(await confirmDialog('Delete this dead letter?', 'Message ' + id + ' is removed for good.', { danger: true, okLabel: 'Delete' }))) return;
            await act(btn, async () => {
              await api('POST', apiPath('queues', queue, 'dead-letters', 'delete'), { ids: [id] });
              showNotice('Deleted ' + id + '.');
              location.hash = link('dlq', queue);
            });
          },
        }, 'Delete'),
      ];
    }
    const status = dl ? badge('dead letter', 'dead', 'message-status')
      : last ? badge(String(last.event), eventKind(last.event), 'message-status') : badge('unknown', null, 'message-status');
    return h('section', { class: 'page', test: 'page-message' },
      h('nav', { class: 'crumbs' }, h('a', { href: '#/queues' }, 'Queues'), ' / ',
        h('a', { href: link('queues', queue) }, queue), ' / ',
        dl ? h('a', { href: link('dlq', queue), test: 'crumb-dlq' }, 'Dead letters') : 'Messages', ' / '),
      pageHeader(h('span', { class: 'mono break', test: 'message-id' }, id), h('span', null, 'in ', h('code', null, queue), ' ', status), actions),
      dl ? h('section', { class: 'card' }, h('h2', null, 'Dead letter'),
        h('dl', { class: 'kv', test: 'dead-letter-info' },
          h('dt', null, 'Reason'), h('dd', { test: 'message-reason' }, dl.reason || '—'),
          h('dt', null, 'Last error'), h('dd', { class: 'mono wrap', test: 'message-last-error' }, dl.last_error || '—'),
          h('dt', null, 'Attempts'), h('dd', { test: 'message-attempts' }, fmtNum(dl.attempts)),
          h('dt', null, 'Priority'), h('dd', null, fmtNum(dl.priority)),
          h('dt', null, 'Route key'), h('dd', { class: 'mono' }, dl.route_key || '—'),
          h('dt', null, 'Enqueued'), h('dd', null, fmtTime(dl.enqueued_at)),
          h('dt', null, 'First failed'), h('dd', null, fmtTime(dl.first_failed_at)),
          h('dt', null, 'Dead since'), h('dd', null, fmtTime(dl.dead_at)))) : null,
      h('section', { class: 'card' }, h('h2', null, 'Payload'),
        dl ? payloadBox(dl) : h('p', { class: 'muted', test: 'message-payload-missing' }, 'The dashboard shows payloads of dead letters; this message is not in the dead letters (its history is below).')),
      dl ? h('section', { class: 'card' }, h('h2', null, 'Headers'), headersTable(dl.headers)) : null,
      h('section', { class: 'card' }, h('h2', null, 'History'), timeline(hist)));
  }

  async function viewSearch(ctx) {
    const params = ctx.params;
    const id = params.get('id') || '';
    const text = params.get('text') || '';
    const queue = params.get('queue') || '';
    const [qdata, res] = await Promise.all([
      api('GET', 'api/queues'),
      id || text ? api('GET', 'api/search' + withQuery('', id ? { id } : { text, queue })) : Promise.resolve(null),
    ]);
    const names = listOf(qdata, 'queues').map((q) => String(q.name)).sort();
    const idInput = h('input', { class: 'input mono', name: 'id', value: id, required: true, placeholder: 'message id', test: 'search-id', autocomplete: 'off' });
    const textInput = h('input', { class: 'input', name: 'text', value: text, required: true, placeholder: 'e.g. ada@example.com', test: 'search-text', autocomplete: 'off' });
    const queueSel = h('select', { class: 'input', name: 'queue', test: 'search-queue', value: queue },
      h('option', { value: '' }, 'All queues'), names.map((n) => h('option', { value: n }, n)));
    const forms = h('div', { class: 'search-forms' },
      h('form', {
        class: 'card search-card', test: 'search-id-form',
        onsubmit: (ev) => { ev.preventDefault(); location.hash = withQuery('#/search', { id: idInput.value.trim() }); },
      }, h('h2', null, 'By message id'), h('p', { class: 'muted small' }, 'Looks in every queue\'s history and dead letters.'),
      h('div', { class: 'inline-form' }, idInput, h('button', { type: 'submit', class: 'btn btn-primary', test: 'search-id-submit' }, 'Find'))),
      h('form', {
        class: 'card search-card', test: 'search-text-form',
        onsubmit: (ev) => { ev.preventDefault(); location.hash = withQuery('#/search', { text: textInput.value, queue: queueSel.value }); },
      }, h('h2', null, 'By payload text'), h('p', { class: 'muted small' }, 'Searches the payloads of dead letters.'),
      h('div', { class: 'inline-form' }, textInput, queueSel, h('button', { type: 'submit', class: 'btn btn-primary', test: 'search-text-submit' }, 'Search'))));
    let results = null;
    if (res) {
      const items = listOf(res, 'results');
      const rows = items.map((r) => {
        let details = '';
        if (r.dead_letter) {
          details = [r.dead_letter.reason ? badge(r.dead_letter.reason, 'dead') : null, ' ',
            h('span', { class: 'payload-preview mono', test: 'search-payload' }, payloadPreview(r.dead_letter, 160))];
        } else if (Array.isArray(r.history) && r.history.length) {
          const evs = r.history.slice().sort((a, b) => Number(a.at) - Number(b.at));
          const l = evs[evs.length - 1];
          details = fmtNum(evs.length) + ' event' + (evs.length === 1 ? '' : 's') + ', last ' + String(l.event) + ' at ' + fmtTime(l.at);
        }
        return h('tr', { test: 'search-result', 'data-id': r.id, 'data-queue': r.queue },
          h('td', null, h('a', { href: link('queues', r.queue) }, r.queue)),
          h('td', { class: 'id-cell' }, h('a', { href: link('message', r.queue, r.id), class: 'mono', test: 'search-result-link' }, r.id)),
          h('td', null, badge(r.kind === 'dead_letter' ? 'dead letter' : String(r.kind || ''), r.kind === 'dead_letter' ? 'dead' : 'info')),
          h('td', { class: 'payload-cell' }, details));
      });
      results = h('section', { class: 'card' },
        h('h2', null, 'Results ', h('span', { class: 'muted', test: 'search-count' }, '(' + fmtNum(items.length) + ')')),
        table([{ label: 'Queue' }, { label: 'Message id' }, { label: 'Found in' }, { label: 'Details' }], rows,
          { test: 'search-results', empty: 'Nothing found.' }));
    }
    return h('section', { class: 'page', test: 'page-search' }, pageHeader('Search'), forms, results);
  }

  async function viewTopics(ctx) {
    const [tdata, qdata] = await Promise.all([api('GET', 'api/topics'), api('GET', 'api/queues')]);
    const topics = listOf(tdata, 'topics').slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const names = listOf(qdata, 'queues').map((q) => String(q.name)).sort();
    const admin = isAdmin();
    const cards = topics.map((t) => {
      const bindings = t.bindings || [];
      const rows = bindings.map((b) => h('tr', { test: 'binding-row', 'data-queue': b.queue, 'data-pattern': b.pattern },
        h('td', null, h('a', { href: link('queues', b.queue) }, b.queue)),
        h('td', { class: 'mono' }, b.pattern),
        admin ? h('td', { class: 'actions-cell' }, h('button', {
          type: 'button', class: 'btn btn-small', test: 'unbind',
          onclick: (ev) => act(ev.currentTarget, async () => {
            await api('DELETE', apiPath('topics', t.name, 'bindings'), { queue: b.queue, pattern: b.pattern });
            showNotice('Unbound ' + b.queue + ' (' + b.pattern + ') from ' + t.name + '.');
            ctx.reload();
          }),
        }, 'Unbind')) : null));
      let bindForm = null;
      if (admin) {
        const qsel = h('select', { class: 'input', test: 'bind-queue', required: true, 'aria-label': 'Queue' }, names.map((n) => h('option', { value: n }, n)));
        const pat = h('input', { class: 'input mono', test: 'bind-pattern', required: true, placeholder: 'order.*.created or #', 'aria-label': 'Pattern', autocomplete: 'off' });
        const btn = h('button', { type: 'submit', class: 'btn', test: 'bind-submit' }, 'Bind');
        bindForm = h('form', {
          class: 'inline-form', test: 'bind-form',
          onsubmit: (ev) => {
            ev.preventDefault();
            act(btn, async () => {
              await api('POST', apiPath('topics', t.name, 'bindings'), { queue: qsel.value, pattern: pat.value.trim() });
              showNotice('Bound ' + qsel.value + ' to ' + t.name + '.');
              ctx.reload();
            });
          },
        }, qsel, pat, btn);
      }
      return h('section', { class: 'card', test: 'topic', 'data-topic': t.name },
        h('div', { class: 'card-head' }, h('h2', { class: 'mono' }, t.name),
          admin ? h('button', {
            type: 'button', class: 'btn btn-small btn-danger-outline', test: 'topic-delete',
            onclick: async (ev) => {
              const b = ev.currentTarget;
              if (!(await confirmDialog('Delete topic ' + t.name + '?', 'The topic and its ' + bindings.length + ' binding(s) are removed; the queues stay.', { danger: true, okLabel: 'Delete topic' }))) return;
              await act(b, async () => {
                await api('DELETE', apiPath('topics', t.name));
                showNotice('Deleted topic ' + t.name + '.');
                ctx.reload();
              });
            },
          }, 'Delete') : null),
        table([{ label: 'Queue' }, { label: 'Pattern' }, admin ? { label: '' } : null].filter(Boolean), rows,
          { test: 'bindings', empty: 'No bindings: messages published here reach no queue.' }),
        bindForm);
    });
    let create = null;
    if (admin) {
      const name = h('input', { class: 'input', required: true, placeholder: 'orders', test: 'topic-name', autocomplete: 'off', 'aria-label': 'Topic name' });
      const btn = h('button', { type: 'submit', class: 'btn btn-primary', test: 'topic-create' }, 'Create topic');
      create = h('form', {
        class: 'card inline-form', test: 'topic-create-form',
        onsubmit: (ev) => {
          ev.preventDefault();
          act(btn, async () => {
            await api('POST', 'api/topics', { name: name.value.trim() });
            showNotice('Created topic ' + name.value.trim() + '.');
            ctx.reload();
          });
        },
      }, name, btn);
    }
    return h('section', { class: 'page', test: 'page-topics' },
      pageHeader('Topics', 'Route keys are dot-separated words; * matches one word, # zero or more.'),
      create || readOnlyNote('creating topics and bindings'),
      cards.length ? cards : h('p', { class: 'muted card' }, 'No topics yet.'));
  }

  async function viewConsumers(ctx) {
    const tbody = h('div');
    const fill = (d) => {
      const list = listOf(d, 'consumers');
      clear(tbody);
      tbody.appendChild(table([
        { label: 'Queue' }, { label: 'Consumer' }, { label: 'Concurrency', className: 'num' }, { label: 'In flight', className: 'num' },
        { label: 'Circuit breaker' }, { label: 'Acked', className: 'num' }, { label: 'Failed', className: 'num' },
      ], list.map((c) => h('tr', { test: 'consumer-row', 'data-queue': c.queue },
        h('td', null, h('a', { href: link('queues', c.queue) }, c.queue)),
        h('td', null, c.name),
        h('td', { class: 'num' }, fmtNum(c.concurrency)),
        h('td', { class: 'num' }, fmtNum(c.in_flight)),
        h('td', null, badge(String(c.breaker || 'unknown').replace('_', ' '),
          c.breaker === 'open' ? 'dead' : c.breaker === 'half_open' ? 'warn' : 'ok', 'breaker')),
        h('td', { class: 'num' }, fmtNum(c.acked)),
        h('td', { class: 'num' }, fmtNum(c.failed)))),
      { test: 'consumers', empty: 'No consumers run inside this server process. Workers started elsewhere (ferry consume, your services) are not listed here; their effect shows in the queue depths.' }));
    };
    fill(await api('GET', 'api/consumers'));
    ctx.setRefresh(async () => {
      const d = await api('GET', 'api/consumers');
      if (ctx.alive()) fill(d);
    });
    return h('section', { class: 'page', test: 'page-consumers' },
      pageHeader('Consumers', 'An open circuit breaker pauses receiving until a trial delivery succeeds.'),
      h('section', { class: 'card' }, tbody));
  }

  async function viewAudit(ctx) {
    const offset = intParam(ctx.params, 'offset', 0);
    const limit = intParam(ctx.params, 'limit', 50, 500) || 50;
    const d = await api('GET', 'api/audit' + withQuery('', { offset, limit }));
    const entries = listOf(d, 'entries');
    const rows = entries.map((e) => h('tr', { test: 'audit-row' },
      h('td', { class: 'time' }, fmtTime(e.at)),
      h('td', null, e.actor === undefined || e.actor === null ? '—' : String(e.actor)),
      h('td', null, e.role ? badge(String(e.role), e.role === 'admin' ? 'info' : null) : '—'),
      h('td', { class: 'mono' }, String(e.action || '')),
      h('td', { class: 'mono' }, e.target === undefined || e.target === null ? '—' : String(e.target)),
      h('td', { class: 'num' }, e.count === undefined || e.count === null ? '—' : fmtNum(e.count)),
      h('td', { class: 'wrap' }, e.detail === undefined || e.detail === null ? '' : typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail)),
      h('td', { class: 'mono' }, e.remote === undefined || e.remote === null ? '' : String(e.remote))));
    return h('section', { class: 'page', test: 'page-audit' },
      pageHeader('Audit log', 'Every requeue, purge, delete, pause and topology change, newest first.'),
      h('section', { class: 'card' },
        table([{ label: 'When' }, { label: 'Actor' }, { label: 'Role' }, { label: 'Action' }, { label: 'Target' },
          { label: 'Count', className: 'num' }, { label: 'Detail' }, { label: 'Remote' }], rows, { test: 'audit', empty: 'No entries yet.' }),
        pager(offset, limit, entries.length, d && d.total, (o) => { location.hash = withQuery('#/audit', { offset: o || '', limit: limit === 50 ? '' : limit }); })));
  }

  function alertStateKind(v) {
    const t = String(v || '');
    if (/fir|alert|crit|open/i.test(t)) return 'dead';
    if (/pend|warn/i.test(t)) return 'warn';
    if (/ok|resol|normal|inactive|clear/i.test(t)) return 'ok';
    return null;
  }

  function genericTable(list, test) {
    const keys = [];
    for (const item of list) if (item && typeof item === 'object') for (const k of Object.keys(item)) if (!keys.includes(k)) keys.push(k);
    return table(keys.map((k) => ({ label: humanKey(k) })), list.map((item) => h('tr', { test: test + '-row' }, keys.map((k) => {
      const v = item ? item[k] : undefined;
      if ((k === 'state' || k === 'status') && typeof v === 'string') return h('td', null, badge(v, alertStateKind(v), test + '-state'));
      return h('td', { class: typeof v === 'number' ? 'num' : 'wrap' }, fmtValue(k, v));
    }))), { test, empty: 'None.' });
  }

  function ruleStates(rule) {
    const qs = Array.isArray(rule.queues) ? rule.queues : null;
    if (!qs) return rule.state ? badge(String(rule.state), alertStateKind(rule.state), 'alert-state') : '—';
    if (!qs.length) return h('span', { class: 'muted' }, 'no data yet');
    return h('div', { class: 'alert-states' }, qs.map((q) => h('div', { class: 'alert-state-line' },
      badge(String(q.state), alertStateKind(q.state), 'alert-state'), ' ',
      h('a', { href: link('queues', q.queue) }, q.queue),
      q.value !== null && q.value !== undefined ? h('span', { class: 'muted' }, ' = ' + fmtNum(Math.round(Number(q.value) * 1000) / 1000)) : null,
      q.since ? h('span', { class: 'muted small' }, ' since ' + fmtTime(q.since)) : null)));
  }

  async function viewAlerts() {
    const d = await api('GET', 'api/alerts');
    const obj = d && typeof d === 'object' && !Array.isArray(d) ? d : null;
    const rules = Array.isArray(d) ? d : obj && Array.isArray(obj.rules) ? obj.rules : null;
    const known = rules && rules.every((r) => r && typeof r === 'object' && 'name' in r);
    const sections = [];
    if (rules && !rules.length) {
      sections.push(h('p', { class: 'note', test: 'alerts-empty' }, 'No alert rules are configured. Add ',
        h('code', null, '[[serve.alerts.rules]]'), ' to the config of ferry serve to watch depth, dead letters or failure ratios.'));
    } else if (known) {
      sections.push(h('section', { class: 'card' }, h('h2', null, 'Rules'), table([
        { label: 'Rule' }, { label: 'Kind' }, { label: 'Queue' }, { label: 'Threshold', className: 'num' },
        { label: 'For' }, { label: 'Window' }, { label: 'Webhooks' }, { label: 'State' },
      ], rules.map((r) => h('tr', { test: 'alert-row', 'data-rule': r.name },
        h('td', null, h('strong', null, String(r.name))),
        h('td', { class: 'mono' }, r.kind === undefined ? '—' : String(r.kind)),
        h('td', null, r.queue ? h('a', { href: link('queues', r.queue) }, r.queue) : 'every queue'),
        h('td', { class: 'num' }, r.threshold === undefined ? '—' : fmtNum(r.threshold)),
        h('td', null, r.for_ms === undefined || r.for_ms === null ? '—' : fmtDuration(r.for_ms)),
        h('td', null, r.window_ms === undefined || r.window_ms === null ? '—' : fmtDuration(r.window_ms)),
        h('td', null, Array.isArray(r.webhooks) && r.webhooks.length ? r.webhooks.join(', ') : '—'),
        h('td', null, ruleStates(r)))), { test: 'alerts' })));
    } else if (rules) {
      sections.push(h('section', { class: 'card' }, h('h2', null, 'Rules'), genericTable(rules, 'alert')));
    }
    if (obj && Array.isArray(obj.webhooks) && obj.webhooks.length) {
      sections.push(h('section', { class: 'card' }, h('h2', null, 'Webhooks'), genericTable(obj.webhooks, 'webhook')));
    }
    if (!rules) {
      sections.push(h('section', { class: 'card' }, h('pre', { class: 'payload', test: 'alerts-json' }, JSON.stringify(d, null, 2))));
    }
    const firing = obj && typeof obj.firing === 'number' ? obj.firing : null;
    return h('section', { class: 'page', test: 'page-alerts' },
      pageHeader('Alerts', 'Rules evaluated by this server on its samples, and their current state.',
        firing !== null ? [badge(firing ? fmtNum(firing) + ' firing' : 'nothing firing', firing ? 'dead' : 'ok', 'alerts-firing')] : null),
      sections);
  }

  // ------------------------------------------------------------------ start

  async function start() {
    window.addEventListener('hashchange', () => route());
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && state.navOpen) setNavOpen(false);
    });
    try {
      const s0 = await api('GET', 'api/session');
      state.session = { role: s0.role, csrf: s0.csrf, actor: s0.actor };
      renderApp();
    } catch (e) {
      renderLogin(e.status === 401 || e.status === undefined ? '' : e.kind + ': ' + e.message);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
