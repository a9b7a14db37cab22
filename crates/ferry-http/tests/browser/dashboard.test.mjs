// Headless-browser test of the `ferry serve` dashboard.
//
//   FERRY_URL=http://127.0.0.1:PORT FERRY_TOKEN=... [FERRY_READ_TOKEN=...] [FERRY_SCREENSHOTS=dir] \
//     node dashboard.test.mjs
//
// Run by crates/ferry-cli/tests/dashboard_browser.rs against a real `ferry serve` on a fresh
// data directory. Seeds data through the HTTP API with the bearer token, then drives Debian's
// Chromium (/usr/bin/chromium, or FERRY_CHROMIUM) through playwright-core: login, overview,
// queue view, dead letters (the XSS probe must stay literal text), message detail (JSON,
// binary), requeue, edit and requeue, purge confirmation, search, topics, audit, phone width,
// logout, and (with FERRY_READ_TOKEN) the read-only role. Exits non-zero with a message
// naming the failed step.

import { mkdirSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BASE = (process.env.FERRY_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.FERRY_TOKEN || '';
const READ_TOKEN = process.env.FERRY_READ_TOKEN || '';
const SHOTS = process.env.FERRY_SCREENSHOTS ? resolve(process.env.FERRY_SCREENSHOTS) : '';
const CHROMIUM = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15000;

const XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
const INVOICE = { invoice: 42, to: 'grace@example.com', lines: [{ sku: 'FERRY-PRO', qty: 1, price: '19.90' }], currency: 'EUR' };
const BINARY = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
  0xff, 0xfe, 0x00, 0x01, 0x7f, 0x80, 0xc3, 0x28, 0x3c, 0x73, 0x63, 0x72, 0x69, 0x70, 0x74, 0x3e]);

function fail(msg) {
  console.error('dashboard browser test FAILED: ' + msg);
  process.exit(1);
}

if (!BASE) fail('FERRY_URL is not set (the base URL of a running `ferry serve`, e.g. http://127.0.0.1:8080)');
if (!TOKEN) fail('FERRY_TOKEN is not set (an admin token of that server)');
if (!existsSync(CHROMIUM)) fail(`no browser at ${CHROMIUM}: apt-get install chromium (or set FERRY_CHROMIUM)`);

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  fail('playwright-core is not installed: run npm ci in crates/ferry-http/tests/browser (' + e.message + ')');
}

// ------------------------------------------------------------------ helpers

let currentStep = 'start';
const log = (...a) => console.log('[dashboard]', ...a);

async function step(name, fn) {
  currentStep = name;
  const t0 = Date.now();
  await fn();
  log(`ok   ${name} (${Date.now() - t0} ms)`);
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

function eq(actual, expected, what) {
  if (actual !== expected) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

async function api(method, path, body) {
  const res = await fetch(BASE + path, {
    method,
    headers: Object.assign({ Authorization: 'Bearer ' + TOKEN, Accept: 'application/json' },
      body === undefined ? {} : { 'Content-Type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = text;
  }
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 500)}`);
  return data;
}

async function queueStats(name) {
  const q = await api('GET', '/api/queues/' + encodeURIComponent(name));
  return q.stats;
}

async function waitFor(what, fn, timeout = TIMEOUT) {
  const t0 = Date.now();
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const sel = (test, extra = '') => `[data-test="${test}"]${extra}`;

// ------------------------------------------------------------------ seed through the API

async function seed() {
  await api('POST', '/api/queues', { name: 'emails', max_attempts: 1 });
  await api('POST', '/api/queues', { name: 'orders', max_attempts: 5 });
  await api('POST', '/api/queues/emails/messages', {
    messages: [
      { id: 'welcome-ada', payload: { to: 'ada@example.com', template: 'welcome' }, headers: { tenant: 'acme' } },
      { id: 'xss-probe', payload: XSS, headers: { 'x-evil': '<b onmouseover="window.__pwned=3">bold</b>', tenant: 'acme' } },
      { id: 'binary-blob', payload_base64: BINARY.toString('base64'), headers: { 'content-type': 'application/octet-stream' } },
      { id: 'invoice-42', payload: JSON.stringify(INVOICE), headers: { tenant: 'globex', 'content-type': 'application/json' } },
      { id: 'digest-9', payload: 'weekly digest for linus@example.com', headers: {} },
      { id: 'reset-7', payload: { to: 'alan@example.com', template: 'password-reset' } },
    ],
  });
  const want = new Set(['welcome-ada', 'xss-probe', 'binary-blob', 'invoice-42', 'digest-9', 'reset-7']);
  const got = new Map();
  for (let i = 0; i < 20 && got.size < want.size; i++) {
    const r = await api('POST', '/api/queues/emails/receive', { max: 10, wait_ms: 1000, lease_ms: 60000 });
    for (const d of r.deliveries || []) got.set(d.id, d);
  }
  for (const id of want) check(got.has(id), `seed: message ${id} was sent but never received`);
  const xssDelivery = got.get('xss-probe');
  check(xssDelivery.payload === XSS, `seed: the XSS payload came back changed: ${JSON.stringify(xssDelivery.payload)}`);
  check(got.get('binary-blob').payload_base64 === BINARY.toString('base64'),
    'seed: the binary payload did not come back as the same payload_base64');
  const dead = {
    'xss-probe': { reason: 'render_failed', error: 'template error near <script>: unexpected tag' },
    'binary-blob': { reason: 'decode_error', error: 'payload is not UTF-8 JSON' },
    'invoice-42': { reason: 'smtp_rejected', error: '550 5.1.1 <grace@example.com>: mailbox unavailable' },
    'digest-9': { reason: 'smtp_rejected', error: '421 4.7.0 try again later' },
  };
  for (const [id, d] of got) {
    if (dead[id]) await api('POST', '/api/dead-letter', { receipt: d.receipt, reason: dead[id].reason, error: dead[id].error });
    else await api('POST', '/api/ack', { receipt: d.receipt });
  }
  await api('POST', '/api/queues/emails/messages', {
    messages: [
      { id: 'newsletter-1', payload: { to: 'list@example.com', issue: 1 } },
      { id: 'newsletter-2', payload: { to: 'list@example.com', issue: 2 } },
      { id: 'reminder-30m', payload: { order: 7, action: 'cancel-if-unpaid' }, delay_ms: 30 * 60 * 1000 },
    ],
  });
  await api('POST', '/api/queues/orders/messages', {
    messages: [1, 2, 3, 4, 5].map((n) => ({ id: 'order-' + n, payload: { order: n, total: n * 10 } })),
  });
  const r = await api('POST', '/api/queues/orders/receive', { max: 2, wait_ms: 1000, lease_ms: 60000 });
  if (r.deliveries && r.deliveries[0]) await api('POST', '/api/ack', { receipt: r.deliveries[0].receipt });
  const st = await queueStats('emails');
  eq(st.dead, 4, 'seed: dead letters of emails');
}

// ------------------------------------------------------------------ the browser part

const consoleProblems = [];
let browser;
let page;
let userDataDir;

async function shot(name) {
  if (!SHOTS) return;
  // Notices of earlier steps (they expire after a few seconds) are left out of the pictures.
  await page.evaluate(() => document.querySelectorAll('[data-test="notice"]').forEach((n) => n.remove()));
  await page.waitForTimeout(150); // let fonts and transitions settle
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
  log(`     screenshot ${name}.png`);
}

async function go(hash, readySelector) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(readySelector, { state: 'visible' });
  await page.waitForFunction(() => !document.getElementById('main').hasAttribute('aria-busy'));
}

async function text(selector) {
  return ((await page.locator(selector).first().textContent()) || '').trim();
}

async function notPwned(where) {
  const pwned = await page.evaluate(() => window.__pwned);
  check(pwned === undefined, `${where}: the XSS payload ran (window.__pwned = ${JSON.stringify(pwned)})`);
  const imgs = await page.locator('img').count();
  eq(imgs, 0, `${where}: <img> elements in the page (the dashboard has none of its own)`);
  const scripts = await page.evaluate(() => Array.from(document.scripts, (x) => x.getAttribute('src') || 'inline'));
  check(scripts.length === 1 && /assets\/app\.js$/.test(scripts[0]), `${where}: unexpected scripts in the page: ${JSON.stringify(scripts)}`);
}

async function main() {
  await step('seed through the API', seed);

  userDataDir = mkdtempSync(join(tmpdir(), 'ferry-dashboard-chromium-'));
  if (SHOTS) mkdirSync(SHOTS, { recursive: true });

  await step('launch chromium', async () => {
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
      viewport: { width: 1280, height: 800 },
      locale: 'en-US',
      timezoneId: 'UTC',
    });
    page = browser.pages()[0] || (await browser.newPage());
    page.setDefaultTimeout(TIMEOUT);
    page.on('pageerror', (e) => consoleProblems.push('page error: ' + e.message));
    page.on('console', (m) => {
      const t = m.text();
      if (m.type() === 'error' && !/Failed to load resource/.test(t)) consoleProblems.push('console error: ' + t);
      if (/Content.Security.Policy|Refused to/i.test(t)) consoleProblems.push('CSP: ' + t);
    });
    page.on('dialog', (d) => {
      consoleProblems.push('unexpected native dialog: ' + d.message());
      d.dismiss().catch(() => {});
    });
  });

  await step('the page is served with the CSP and the login screen shows', async () => {
    const res = await page.goto(BASE + '/', { waitUntil: 'load' });
    eq(res.status(), 200, 'GET / status');
    const csp = res.headers()['content-security-policy'] || '';
    check(/default-src 'none'/.test(csp) && /script-src 'self'/.test(csp), `GET / has no strict Content-Security-Policy: ${JSON.stringify(csp)}`);
    await page.waitForSelector(sel('login-form'), { state: 'visible' });
    await shot('login');
  });

  await step('a wrong token is refused with a message', async () => {
    await page.fill(sel('login-token'), 'not-the-token');
    await page.click(sel('login-submit'));
    await page.waitForSelector(sel('login-error'), { state: 'visible' });
    check((await text(sel('login-error'))).length > 0, 'the login error is empty');
  });

  await step('log in with the token', async () => {
    await page.fill(sel('login-token'), TOKEN);
    await page.click(sel('login-submit'));
    await page.waitForSelector(sel('role'), { state: 'visible' });
    eq(await text(sel('role')), 'admin', 'role shown after login');
  });

  await step('the overview lists the seeded queue emails', async () => {
    await page.waitForSelector(sel('page-overview'));
    const row = page.locator(sel('overview-queue', '[data-queue="emails"]'));
    await row.waitFor({ state: 'visible' });
    const cells = await row.locator('td').allTextContents();
    eq(cells[0].trim(), 'emails', 'overview: queue name cell');
    eq(cells[4].trim(), '4', 'overview: dead letters of emails');
    check(await page.locator(sel('chart-depth') + ' svg').count() === 1, 'overview: no depth chart');
  });

  await step('a session survives a reload (GET /api/session)', async () => {
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector(sel('overview-queue', '[data-queue="emails"]'), { state: 'visible' });
    eq(await text(sel('role')), 'admin', 'role after reload');
  });

  await step('the queue view shows counts, sends a message, pauses and resumes', async () => {
    await page.click(sel('overview-queue', '[data-queue="emails"]') + ' ' + sel('queue-link'));
    await page.waitForSelector(sel('page-queue', '[data-queue="emails"]'), { state: 'visible' });
    await page.waitForFunction(() => !document.getElementById('main').hasAttribute('aria-busy'));
    eq(await text(sel('stat-dead')), '4', 'queue view: dead');
    eq(await text(sel('stat-delayed')), '1', 'queue view: delayed');
    const before = Number(await text(sel('stat-ready')));
    await page.fill(sel('send-payload'), '{"to":"test@example.com","note":"sent from the dashboard"}');
    await page.fill(sel('send-headers'), 'tenant: acme\nsource: dashboard');
    await page.fill(sel('send-id'), 'dashboard-test-1');
    await page.click(sel('send-submit'));
    await page.waitForSelector(sel('notice'), { state: 'visible' });
    await waitFor('the ready count to grow after sending', async () => Number(await text(sel('stat-ready'))) === before + 1);
    const st = await queueStats('emails');
    eq(st.ready, before + 1, 'API: ready after sending from the dashboard');
    await page.click(sel('queue-pause'));
    await page.waitForSelector(sel('queue-resume'), { state: 'visible' });
    await page.waitForSelector(sel('paused'), { state: 'visible' });
    const q = await api('GET', '/api/queues/emails');
    eq(q.paused, true, 'API: paused after clicking Pause');
    await shot('queue-paused');
    await page.click(sel('queue-resume'));
    await page.waitForSelector(sel('queue-pause'), { state: 'visible' });
    eq((await api('GET', '/api/queues/emails')).paused, false, 'API: paused after clicking Resume');
    await shot('queue');
  });

  await step('the dashboard\'s cookie session needs the CSRF token', async () => {
    const status = await page.evaluate(() => fetch('api/queues/emails/pause', {
      method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: '{}',
    }).then((r) => r.status));
    eq(status, 403, 'a cookie-authenticated POST without X-CSRF-Token');
    eq((await api('GET', '/api/queues/emails')).paused, false, 'API: paused after the CSRF-less POST');
  });

  await step('the dead letters of emails show the XSS probe as literal text', async () => {
    await page.click(sel('dlq-link'));
    await page.waitForSelector(sel('page-dlq', '[data-queue="emails"]'), { state: 'visible' });
    await page.waitForFunction(() => !document.getElementById('main').hasAttribute('aria-busy'));
    eq(await page.locator(sel('dlq-row')).count(), 4, 'dead-letter rows');
    eq(await text(sel('dlq-count')), '4', 'dead-letter count');
    const row = page.locator(sel('dlq-row', '[data-id="xss-probe"]'));
    const box = row.locator(sel('dlq-payload'));
    check(await box.isVisible(), 'the XSS payload box is not visible');
    eq(await box.textContent(), XSS, 'the XSS payload box text');
    eq(await box.locator('img').count(), 0, 'img elements inside the payload box');
    eq(await box.locator('script').count(), 0, 'script elements inside the payload box');
    eq(await row.locator(sel('dlq-reason')).textContent(), 'render_failed', 'reason of xss-probe');
    const binPreview = await page.locator(sel('dlq-row', '[data-id="binary-blob"]') + ' ' + sel('dlq-payload')).textContent();
    check(/^binary, 32 bytes: 89 50 4e 47/.test(binPreview), `binary preview: ${binPreview}`);
    await notPwned('dead letters');
    await shot('dead-letters');
  });

  await step('the filter by reason narrows the list', async () => {
    await page.fill(sel('dlq-filter-reason'), 'smtp_rejected');
    await page.click(sel('dlq-filter-apply'));
    await waitFor('two smtp_rejected rows', async () => (await page.locator(sel('dlq-row')).count()) === 2
      && (await page.locator(sel('dlq-row', '[data-id="invoice-42"]')).count()) === 1);
    await page.click(sel('dlq-filter-clear'));
    await waitFor('all four rows again', async () => (await page.locator(sel('dlq-row')).count()) === 4);
  });

  await step('the message detail of the XSS probe escapes payload and headers', async () => {
    await page.click(sel('dlq-row', '[data-id="xss-probe"]') + ' ' + sel('dlq-id'));
    await page.waitForSelector(sel('page-message'), { state: 'visible' });
    await page.waitForFunction(() => !document.getElementById('main').hasAttribute('aria-busy'));
    eq(await text(sel('message-id')), 'xss-probe', 'message id');
    const box = page.locator(sel('message-payload'));
    eq(await box.textContent(), XSS, 'message payload text');
    eq(await box.locator('*').count(), 0, 'elements inside the message payload box');
    const hdr = await page.locator(sel('message-headers')).textContent();
    check(hdr.includes('<b onmouseover="window.__pwned=3">bold</b>'), `headers not shown literally: ${hdr}`);
    eq(await page.locator(sel('message-headers') + ' b').count(), 0, 'b elements in the headers table');
    await notPwned('message detail');
    await shot('message-xss');
  });

  await step('a JSON payload is pretty-printed with headers and history', async () => {
    await go('#/message/emails/invoice-42', sel('page-message'));
    eq(await text(sel('payload-kind')), 'JSON · ' + Buffer.byteLength(JSON.stringify(INVOICE)) + ' bytes', 'payload kind');
    eq(await page.locator(sel('message-payload')).textContent(), JSON.stringify(INVOICE, null, 2), 'pretty JSON');
    eq(await text(sel('message-reason')), 'smtp_rejected', 'reason');
    check((await page.locator(sel('header-row')).count()) >= 2, 'headers of invoice-42 not shown');
    check((await page.locator(sel('history-event')).count()) >= 1, 'no history events for invoice-42');
    await shot('message');
  });

  await step('a binary payload is shown as a hex dump', async () => {
    await go('#/message/emails/binary-blob', sel('page-message'));
    check((await text(sel('payload-kind'))).startsWith('binary · 32 bytes'), 'payload kind of binary-blob');
    const dump = await page.locator(sel('message-payload')).textContent();
    check(dump.startsWith('00000000  89 50 4e 47 0d 0a 1a 0a  00 00 00 0d 49 48 44 52  |.PNG........IHDR|'),
      `hex dump line 1: ${dump.split('\n')[0]}`);
    check(dump.includes('00000010  ff fe 00 01 7f 80 c3 28  3c 73 63 72 69 70 74 3e  |.......(<script>|'), `hex dump line 2: ${dump.split('\n')[1]}`);
    await notPwned('binary message');
    await shot('message-binary');
  });

  await step('search by payload text and by id', async () => {
    await go('#/search', sel('page-search'));
    await page.fill(sel('search-text'), 'window.__pwned');
    await page.selectOption(sel('search-queue'), 'emails');
    await page.click(sel('search-text-submit'));
    await page.waitForSelector(sel('search-result', '[data-id="xss-probe"]'), { state: 'visible' });
    eq(await page.locator(sel('search-result', '[data-id="xss-probe"]') + ' ' + sel('search-payload')).textContent(), XSS, 'search result payload');
    await notPwned('search');
    await page.fill(sel('search-id'), 'invoice-42');
    await page.click(sel('search-id-submit'));
    await page.waitForSelector(sel('search-result', '[data-id="invoice-42"]'), { state: 'visible' });
    await shot('search');
  });

  await step('requeue a selected dead letter: the count drops', async () => {
    await go('#/dlq/emails', sel('page-dlq'));
    await page.check(sel('dlq-row', '[data-id="digest-9"]') + ' ' + sel('dlq-select'));
    eq(await text(sel('dlq-selected-count')), '1', 'selected count');
    await page.click(sel('dlq-requeue-selected'));
    await page.waitForSelector(sel('notice'), { state: 'visible' });
    await waitFor('the dead-letter count to drop to 3', async () => (await text(sel('dlq-count'))) === '3');
    eq(await page.locator(sel('dlq-row', '[data-id="digest-9"]')).count(), 0, 'the requeued row is still listed');
    eq((await queueStats('emails')).dead, 3, 'API: dead letters after requeue');
  });

  await step('purge asks for the queue name and can be cancelled', async () => {
    await page.click(sel('dlq-purge'));
    await page.waitForSelector(sel('confirm-input'), { state: 'visible' });
    check(await page.locator(sel('confirm-ok')).isDisabled(), 'purge confirm is enabled before typing');
    await page.fill(sel('confirm-input'), 'email');
    check(await page.locator(sel('confirm-ok')).isDisabled(), 'purge confirm is enabled with a wrong name');
    await page.fill(sel('confirm-input'), 'emails');
    check(await page.locator(sel('confirm-ok')).isEnabled(), 'purge confirm stays disabled with the right name');
    await shot('purge-confirm');
    await page.click(sel('confirm-cancel'));
    await page.waitForSelector(sel('dialog'), { state: 'detached' });
    eq((await queueStats('emails')).dead, 3, 'API: dead letters after a cancelled purge');
  });

  await step('phone width (375 px): no horizontal overflow, the nav collapses', async () => {
    await page.setViewportSize({ width: 375, height: 812 });
    await go('#/overview', sel('overview-queue', '[data-queue="emails"]'));
    check(await page.locator(sel('nav-toggle')).isVisible(), 'the nav toggle is not visible at 375 px');
    check(!(await page.locator(sel('nav')).isVisible()), 'the nav is not collapsed at 375 px');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    check(overflow <= 376, `the overview is ${overflow} px wide at 375 px (horizontal overflow)`);
    await shot('overview-phone');
    await page.click(sel('nav-toggle'));
    await page.waitForSelector(sel('nav'), { state: 'visible' });
    await shot('nav-phone');
    await page.click(sel('nav-queues'));
    await page.waitForSelector(sel('page-queues'), { state: 'visible' });
    check(!(await page.locator(sel('nav')).isVisible()), 'the nav stays open after choosing a page');
    await go('#/dlq/emails', sel('page-dlq'));
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    check(w <= 376, `the dead letters page is ${w} px wide at 375 px (tables must scroll inside their box)`);
    await shot('dead-letters-phone');
    await go('#/message/emails/invoice-42', sel('page-message'));
    const w2 = await page.evaluate(() => document.documentElement.scrollWidth);
    check(w2 <= 376, `the message page is ${w2} px wide at 375 px`);
    await shot('message-phone');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step('edit and requeue a dead letter', async () => {
    await go('#/message/emails/invoice-42', sel('page-message'));
    await page.click(sel('message-edit'));
    await page.waitForSelector(sel('edit-payload'), { state: 'visible' });
    const edited = JSON.stringify(Object.assign({}, INVOICE, { to: 'grace@example.org' }));
    await page.fill(sel('edit-payload'), edited);
    await page.click(sel('edit-save'));
    await page.waitForSelector(sel('dialog'), { state: 'detached' });
    await page.waitForSelector(sel('notice'), { state: 'visible' });
    eq((await queueStats('emails')).dead, 2, 'API: dead letters after edit and requeue');
    const m = await api('GET', '/api/queues/emails/messages/invoice-42');
    check(!m.dead_letter, 'invoice-42 is still a dead letter after edit and requeue');
  });

  await step('topics: create, bind, unbind', async () => {
    await go('#/topics', sel('page-topics'));
    await page.fill(sel('topic-name'), 'signups');
    await page.click(sel('topic-create'));
    const card = sel('topic', '[data-topic="signups"]');
    await page.waitForSelector(card, { state: 'visible' });
    await page.selectOption(card + ' ' + sel('bind-queue'), 'emails');
    await page.fill(card + ' ' + sel('bind-pattern'), 'user.*.created');
    await page.click(card + ' ' + sel('bind-submit'));
    await page.waitForSelector(card + ' ' + sel('binding-row', '[data-pattern="user.*.created"]'), { state: 'visible' });
    const topics = await api('GET', '/api/topics');
    const list = Array.isArray(topics) ? topics : topics.topics;
    const t = list.find((x) => x.name === 'signups');
    check(t && t.bindings.some((b) => b.queue === 'emails' && b.pattern === 'user.*.created'), 'API: binding not created');
    await page.selectOption(card + ' ' + sel('bind-queue'), 'orders');
    await page.fill(card + ' ' + sel('bind-pattern'), 'user.#');
    await page.click(card + ' ' + sel('bind-submit'));
    await page.waitForSelector(card + ' ' + sel('binding-row', '[data-pattern="user.#"]'), { state: 'visible' });
    await shot('topics');
    await page.click(card + ' ' + sel('binding-row', '[data-pattern="user.#"]') + ' ' + sel('unbind'));
    await page.waitForSelector(card + ' ' + sel('binding-row', '[data-pattern="user.#"]'), { state: 'detached' });
    const after = await api('GET', '/api/topics');
    const t2 = (Array.isArray(after) ? after : after.topics).find((x) => x.name === 'signups');
    check(!t2.bindings.some((b) => b.pattern === 'user.#'), 'API: binding still there after Unbind');
  });

  await step('consumers, alerts and the audit log load', async () => {
    await go('#/consumers', sel('page-consumers'));
    await go('#/alerts', sel('page-alerts'));
    await go('#/audit', sel('page-audit'));
    check((await page.locator(sel('audit-row')).count()) >= 1, 'the audit log shows no entries after requeue and pause');
    const all = (await page.locator(sel('audit')).textContent()) || '';
    check(/requeue/i.test(all), 'the audit log has no requeue entry');
    await shot('audit');
  });

  await step('the overview refreshes on its own and draws the charts', async () => {
    await go('#/overview', sel('overview-queue', '[data-queue="orders"]'));
    await waitFor('three samples of the time series', async () => ((await api('GET', '/api/overview')).series || []).length >= 3, 30000);
    const cell = sel('overview-queue', '[data-queue="orders"]') + ' td:nth-child(2)';
    const before = Number(await text(cell));
    await api('POST', '/api/queues/orders/messages', { messages: [{ payload: 'refresh probe 1' }, { payload: 'refresh probe 2' }] });
    await waitFor('the overview to show the new messages without a reload', async () => Number(await text(cell)) === before + 2, 12000);
    check(await page.locator(sel('chart-depth') + ' polyline').count() >= 1, 'the depth chart draws no lines');
    await notPwned('overview');
    await shot('overview');
  });

  await step('logout ends the session', async () => {
    await page.click(sel('logout'));
    await page.waitForSelector(sel('login-form'), { state: 'visible' });
    await page.reload({ waitUntil: 'load' });
    await page.waitForSelector(sel('login-form'), { state: 'visible' });
    const status = await page.evaluate(() => fetch('api/overview', { credentials: 'same-origin' }).then((r) => r.status));
    eq(status, 401, 'GET /api/overview after logout');
  });

  if (READ_TOKEN) {
    await step('the read role sees everything and no admin action', async () => {
      await page.fill(sel('login-token'), READ_TOKEN);
      await page.click(sel('login-submit'));
      await page.waitForSelector(sel('role'), { state: 'visible' });
      eq(await text(sel('role')), 'read', 'role shown for the read token');
      await go('#/queues/emails', sel('page-queue'));
      eq(await page.locator(sel('send-form')).count(), 0, 'read role: the send form is shown');
      eq(await page.locator(sel('queue-pause') + ', ' + sel('queue-resume') + ', ' + sel('queue-delete')).count(), 0, 'read role: pause/resume/delete shown');
      check(await page.locator(sel('read-only-note')).isVisible(), 'read role: no read-only note on the queue page');
      await go('#/dlq/emails', sel('page-dlq'));
      eq(await page.locator(sel('dlq-row')).count(), 2, 'read role: dead-letter rows');
      eq(await page.locator(sel('dlq-select') + ', ' + sel('dlq-requeue-one') + ', ' + sel('dlq-purge') + ', ' + sel('dlq-requeue-selected')).count(), 0,
        'read role: dead-letter actions shown');
      check(await page.locator(sel('read-only-note')).isVisible(), 'read role: no read-only note on the dead letters');
      await shot('dead-letters-read-role');
      await go('#/message/emails/xss-probe', sel('page-message'));
      eq(await page.locator(sel('message-requeue') + ', ' + sel('message-edit') + ', ' + sel('message-delete')).count(), 0, 'read role: message actions shown');
      await go('#/topics', sel('page-topics'));
      eq(await page.locator(sel('topic-create') + ', ' + sel('unbind') + ', ' + sel('topic-delete')).count(), 0, 'read role: topic actions shown');
      const status = await page.evaluate(async () => {
        const s = await (await fetch('api/session', { credentials: 'same-origin' })).json();
        const r = await fetch('api/queues/emails/dead-letters/requeue', {
          method: 'POST', credentials: 'same-origin',
          headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf }, body: JSON.stringify({ all: true }),
        });
        return r.status;
      });
      eq(status, 403, 'read role: a requeue with a valid CSRF token');
      eq((await queueStats('emails')).dead, 2, 'API: dead letters after the read role tried to requeue');
      await page.click(sel('logout'));
      await page.waitForSelector(sel('login-form'), { state: 'visible' });
    });
  }

  await step('no page errors, console errors or CSP violations', async () => {
    check(consoleProblems.length === 0, consoleProblems.join('\n'));
  });
}

let code = 0;
try {
  await main();
  log('all dashboard checks passed' + (SHOTS ? `; screenshots in ${SHOTS}` : ''));
} catch (e) {
  code = 1;
  console.error(`dashboard browser test FAILED at step "${currentStep}": ${e && e.message ? e.message : e}`);
  if (consoleProblems.length) console.error('browser console:\n  ' + consoleProblems.join('\n  '));
  if (page) {
    try {
      console.error('page URL: ' + page.url());
      const dir = SHOTS || tmpdir();
      await page.screenshot({ path: join(dir, 'failure.png'), fullPage: true });
      console.error('screenshot of the failure: ' + join(dir, 'failure.png'));
    } catch (_) { /* the browser may be gone */ }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(code);
