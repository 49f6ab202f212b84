// Browser tests of the console in headless Chromium (Debian's `chromium`,
// driven by playwright-core). Started by scripts/test-browser.sh, which
// runs `sendpromptly serve` and `sendpromptly listen` and passes:
//   SP_URL, SP_API_KEY, SP_ADMIN_EMAIL, SP_ADMIN_PASSWORD, SP_REPAIR_URL,
//   SP_SCREENSHOTS (where to save screenshots of the main pages).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run scripts/test-browser.sh`);
  return value;
};
const URL = env('SP_URL');
const API_KEY = env('SP_API_KEY');
const EMAIL = env('SP_ADMIN_EMAIL');
const PASSWORD = env('SP_ADMIN_PASSWORD');
const REPAIR_URL = env('SP_REPAIR_URL');
const SHOTS = process.env.SP_SCREENSHOTS || '';
const TIMEOUT = 20_000;

async function api(method, path, body) {
  const response = await fetch(`${URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return json;
}

async function receipt(eventId, eventType, subject, extra = {}) {
  return api('POST', '/v1/receipt', { provider: 'stripe', event_id: eventId, event_type: eventType, subject, effect: 'credits.add', ...extra });
}
async function result(eventId, status, extra = {}) {
  return api('POST', '/v1/result', { provider: 'stripe', event_id: eventId, status, ...extra });
}

async function shot(page, name) {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

let browser;
let context; // signed in
let page;
const incidents = {};

before(async () => {
  // Data the way an app would send it: some payment events succeed, some fail.
  await api('PATCH', '/v1/project', { repair_url: REPAIR_URL });
  for (let i = 0; i < 6; i++) {
    const id = `evt_ok_checkout_${i}`;
    await receipt(id, 'checkout.session.completed', `cus_${100 + i}`, { metadata: { amount: 4900, currency: 'usd' } });
    await result(id, 'success');
  }
  for (let i = 0; i < 3; i++) {
    const id = `evt_ok_invoice_${i}`;
    await receipt(id, 'invoice.paid', `cus_${200 + i}`);
    await result(id, 'success');
  }
  await receipt('evt_1Q2w3E', 'invoice.paid', 'cus_9s8d7f', { metadata: { credits: 500, amount: 1999, currency: 'usd' } });
  incidents.reprocess = (await result('evt_1Q2w3E', 'failure', { error: 'tenant acct_42 not found' })).incident.id;
  await receipt('evt_manual_1', 'invoice.paid', 'cus_manual');
  incidents.manual = (await result('evt_manual_1', 'failure', { error: 'credit ledger locked' })).incident.id;
  await receipt('evt_sub_1', 'customer.subscription.updated', 'cus_sub');
  await result('evt_sub_1', 'failure', { error: 'plan price_123 unknown' });
  await receipt('evt_awaiting_1', 'invoice.paid', 'cus_9s8d7f');

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // The network is closed: without these Chromium hangs on connection attempts.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT);
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
});

describe('the console', () => {
  test('a wrong password is rejected', async () => {
    await page.goto(`${URL}/`);
    await page.waitForURL(/\/login/);
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill('definitely-not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#login-error').waitFor();
    assert.match(await page.locator('#login-error').innerText(), /Wrong email or password/);
    assert.match(page.url(), /\/login$/);
    await shot(page, 'console-login');
  });

  test('sign in and see open incidents first', async () => {
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${URL}/`);
    await page.getByRole('heading', { name: /Overview/ }).waitFor();
    assert.equal(await page.locator('#count-open').innerText(), '3');
    const attention = page.getByRole('region', { name: 'Needs attention' });
    assert.ok(await attention.getByRole('link', { name: incidents.reprocess }).isVisible());
    // The chart is server-rendered SVG with a text alternative.
    assert.ok(await page.locator('svg.chart').isVisible());
    assert.match(await page.locator('#chart-desc').textContent(), /Most trouble: invoice\.paid/);
    await shot(page, 'console-overview');
  });

  test('a POST without its CSRF token is refused', async () => {
    const response = await context.request.post(`${URL}/incidents/${incidents.manual}/resolve`, {
      form: { note: 'forged' },
      maxRedirects: 0,
    });
    assert.equal(response.status(), 403);
    assert.match(await response.text(), /CSRF/);
    const detail = await api('GET', `/v1/incidents/${incidents.manual}`);
    assert.equal(detail.incident.state, 'open');
  });

  test('find an incident created through the API and read its timeline', async () => {
    await page.getByRole('link', { name: 'Incidents', exact: true }).click();
    await page.getByLabel('Search').fill('CUS_9S8D7F');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('link', { name: incidents.reprocess }).click();
    await page.waitForURL(`${URL}/incidents/${incidents.reprocess}`);
    const timeline = page.locator('#timeline');
    await timeline.locator('[data-kind="receipt.recorded"]').waitFor();
    assert.match(await timeline.locator('[data-kind="result.failure"]').innerText(), /tenant acct_42 not found/);
    assert.match(await timeline.locator('[data-kind="incident.opened"]').innerText(), /failed result/);
    assert.equal(await page.locator('#incident-state').innerText(), 'open');
    assert.match(await page.locator('.facts').innerText(), /19\.99 USD/);
    await shot(page, 'console-incident');
  });

  test('click Reprocess and watch the callback attempt and the resolution appear', async () => {
    await page.getByLabel('Note (optional)').fill('customer wrote in');
    await page.getByRole('button', { name: 'Reprocess' }).click();
    await page.waitForURL(/done=reprocess/);
    const timeline = page.locator('#timeline');
    const requested = timeline.locator('[data-kind="reprocess.requested"]');
    await requested.waitFor();
    assert.match(await requested.innerText(), new RegExp(`console:${EMAIL.replace(/[.@]/g, '\\$&')}`));
    // The dispatcher delivers to the repair endpoint; htmx refreshes the page.
    const attempt = requested.locator('[data-kind="callback.attempt"]');
    await attempt.waitFor();
    assert.match(await attempt.innerText(), /attempt 1: HTTP 200 in \d+ ms/);
    // The app applies the repair and reports success for this reprocess.
    const detail = await api('GET', `/v1/incidents/${incidents.reprocess}`);
    await result('evt_1Q2w3E', 'success', { reprocess_id: detail.incident.reprocess.id });
    await timeline.locator('[data-kind="incident.resolved"]').waitFor();
    assert.equal(await page.locator('#incident-state').innerText(), 'resolved');
    assert.match(await timeline.locator('[data-kind="incident.resolved"]').innerText(), /a success result arrived/);
    await shot(page, 'console-incident-resolved');
  });

  test('resolve another incident by hand', async () => {
    await page.goto(`${URL}/incidents/${incidents.manual}`);
    await page.getByLabel('Note (required)').fill('credits added by hand in the admin');
    await page.getByRole('button', { name: 'Resolve' }).click();
    await page.waitForURL(/done=resolved/);
    assert.equal(await page.locator('#incident-state').innerText(), 'resolved');
    const resolved = page.locator('#timeline [data-kind="incident.resolved"]');
    assert.match(await resolved.innerText(), /by hand: credits added by hand in the admin/);
    assert.match(await resolved.innerText(), new RegExp(`console:${EMAIL.replace(/[.@]/g, '\\$&')}`));
  });

  test('create a proof link, open it signed out, revoke it and see it gone', async () => {
    await page.goto(`${URL}/incidents/${incidents.reprocess}`);
    await page.getByRole('button', { name: 'Create proof link' }).click();
    const url = await page.locator('#proof-url').inputValue();
    // The link carries the timeline's chain head (`?h=`, tamper evidence).
    assert.match(url, /\/proof\/[A-Za-z0-9_-]{20,}\?h=[0-9a-f]{64}$/);

    const outsider = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const proof = await outsider.newPage();
    const opened = await proof.goto(url);
    assert.equal(opened.status(), 200);
    await proof.locator('#timeline [data-kind="incident.resolved"]').waitFor();
    assert.match(await proof.locator('#timeline-integrity').innerText(), /^Timeline verified \(\d+ entries, chain head [0-9a-f]{64}\)/);
    assert.equal(await proof.locator('a[href^="/incidents"], a[href="/"], nav').count(), 0, 'no way into the console');
    assert.equal(await proof.getByText(EMAIL).count(), 0, 'the public page does not name users');
    await shot(proof, 'proof-page');

    await page.locator('#proof-links li[data-status="active"]').getByRole('button', { name: 'Revoke' }).click();
    await page.waitForURL(/done=revoked/);
    await page.locator('#proof-links li[data-status="revoked"]').waitFor();
    const gone = await proof.goto(url);
    assert.equal(gone.status(), 404);
    assert.ok(await proof.getByRole('heading', { name: 'This link is not available' }).isVisible());
    await outsider.close();
  });

  test('look up a customer with no incident, and open the settings', async () => {
    await page.getByRole('link', { name: 'Event lookup' }).click();
    await page.getByLabel('Event id or customer').fill('cus_9s8d7f');
    await page.getByRole('button', { name: 'Look up' }).click();
    const results = page.locator('#event-results');
    await results.waitFor();
    assert.match(await results.innerText(), /evt_awaiting_1/);
    assert.match(await results.innerText(), /Not yet\. The app has accepted it/);
    assert.match(await results.innerText(), /Yes\. The app reported success/);
    await shot(page, 'console-event-lookup');

    await page.getByRole('link', { name: 'Settings' }).click();
    assert.equal(await page.getByLabel('Repair URL').inputValue(), REPAIR_URL);
    await shot(page, 'console-settings');
  });

  test('bulk reprocess: select, dry run, confirm, live progress, cancel', async () => {
    const bulk = [];
    for (let i = 0; i < 5; i++) {
      await receipt(`evt_bulk_${i}`, 'order.bulk', `cus_bulk_${i}`);
      bulk.push((await result(`evt_bulk_${i}`, 'failure', { error: 'workers down' })).incident.id);
    }
    // A selection of two.
    await page.goto(`${URL}/incidents?event_type=order.bulk`);
    await page.getByLabel(`Select ${bulk[0]}`).check();
    await page.getByLabel(`Select ${bulk[1]}`).check();
    await page.getByRole('button', { name: 'Reprocess selected…' }).click();
    await page.waitForURL(/\/reprocess-batches\/new\?/);
    assert.equal(await page.locator('#plan-to-send').innerText(), '2');
    // All matching the filter: the dry run sends nothing.
    await page.goto(`${URL}/incidents?event_type=order.bulk`);
    await page.getByRole('button', { name: 'Reprocess all matching…' }).click();
    await page.waitForURL(/\/reprocess-batches\/new\?/);
    assert.equal(await page.locator('#plan-to-send').innerText(), '5');
    assert.equal((await api('GET', `/v1/incidents/${bulk[0]}`)).incident.state, 'open');
    await shot(page, 'console-batch-plan');
    // One callback every 10 s, one at a time: the first goes at once.
    await page.getByLabel('Callbacks per second').fill('0.1');
    await page.getByLabel('At most in flight').fill('1');
    await page.getByRole('button', { name: 'Send 5 repair callbacks' }).click();
    await page.waitForURL(/\/reprocess-batches\/rpb_/);
    const batchId = page.url().split('/').pop();
    // The progress refreshes by itself (htmx) until the first is delivered.
    await page.locator('#count-delivered', { hasText: '1' }).waitFor();
    assert.equal(await page.locator('#batch-state').innerText(), 'running');
    await shot(page, 'console-batch-progress');
    await page.getByRole('button', { name: 'Cancel the rest' }).click();
    await page.locator('#batch-state', { hasText: 'cancelled' }).waitFor();
    assert.equal(await page.locator('#count-cancelled').innerText(), '4');
    assert.equal(await page.locator('#count-sent').innerText(), '1');
    const batch = await api('GET', `/v1/reprocess-batches/${batchId}`);
    assert.equal(batch.state, 'cancelled');
    assert.equal(batch.started_by, `console:${EMAIL}`);
    const sent = batch.items.find((item) => item.reprocess_id);
    const detail = await api('GET', `/v1/incidents/${sent.incident_id}`);
    const requested = detail.timeline.find((entry) => entry.kind === 'reprocess.requested');
    assert.match(requested.detail.note, new RegExp(`reprocessed as part of batch ${batchId} by console:`));
  });

  test('bulk reprocess of the incidents opened in a time window', async () => {
    const older = [];
    for (let i = 0; i < 2; i++) {
      await receipt(`evt_window_old_${i}`, 'order.window', `cus_window_${i}`);
      older.push((await result(`evt_window_old_${i}`, 'failure', { error: 'workers down' })).incident.id);
    }
    // The next whole second (the form's precision) separates the two groups.
    const cut = new Date(Math.ceil((Date.now() + 1) / 1000) * 1000);
    while (Date.now() <= cut.getTime()) await new Promise((resolve) => setTimeout(resolve, 50));
    const recent = [];
    for (let i = 0; i < 3; i++) {
      await receipt(`evt_window_new_${i}`, 'order.window', `cus_window_${i}`);
      recent.push((await result(`evt_window_new_${i}`, 'failure', { error: 'workers down' })).incident.id);
    }
    const cutText = cut.toISOString().slice(0, 19);
    await page.goto(`${URL}/incidents?event_type=order.window`);
    await page.getByLabel('Opened after (UTC)').fill(cutText);
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    await page.waitForURL(/opened_after=/);
    for (const id of recent) await page.getByLabel(`Select ${id}`).waitFor();
    for (const id of older) assert.equal(await page.getByLabel(`Select ${id}`).count(), 0);
    // A datetime-local input drops ":00" seconds from its value (HTML's
    // normalised form), so a cut on a whole minute reads back as HH:MM.
    const shown = await page.getByLabel('Opened after (UTC)').inputValue();
    assert.equal(shown.length === 16 ? `${shown}:00` : shown, cutText);
    // "All matching" carries the window into the batch.
    await page.getByRole('button', { name: 'Reprocess all matching…' }).click();
    await page.waitForURL(/\/reprocess-batches\/new\?.*opened_after=/);
    assert.equal(await page.locator('#plan-to-send').innerText(), '3');
    await page.getByRole('button', { name: 'Send 3 repair callbacks' }).click();
    await page.waitForURL(/\/reprocess-batches\/rpb_/);
    const batch = await api('GET', `/v1/reprocess-batches/${page.url().split('/').pop()}`);
    assert.deepEqual(batch.items.map((item) => item.incident_id).sort(), [...recent].sort());
    for (const id of older) assert.equal((await api('GET', `/v1/incidents/${id}`)).incident.state, 'open');
  });

  test('readable on a phone', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    await phone.addCookies(await context.cookies());
    const small = await phone.newPage();
    await small.goto(`${URL}/`);
    await small.getByRole('heading', { name: /Overview/ }).waitFor();
    const overflow = await small.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `no sideways scrolling (${overflow}px)`);
    await shot(small, 'console-overview-phone');
    await small.goto(`${URL}/incidents/${incidents.reprocess}`);
    const overflow2 = await small.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow2 <= 1, `no sideways scrolling on the incident page (${overflow2}px)`);
    await shot(small, 'console-incident-phone');
    await phone.close();
  });
});
