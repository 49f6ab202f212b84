// The Analytics page (issue #25) in headless Chromium, against the server
// scripts/test-browser.sh starts (real clock): order.paid events whose
// results arrive after known pauses, then the page's SVG time-to-effect
// points and tables are compared with GET /v1/stats, and a screenshot is
// saved as docs/images/analytics.png when SP_SCREENSHOTS is set.
// Only successes are seeded, so console.test.mjs's counts are unchanged
// (this file runs after it: node --test takes the files in name order).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL = process.env.SP_URL;
const API_KEY = process.env.SP_API_KEY;
const EMAIL = process.env.SP_ADMIN_EMAIL;
const PASSWORD = process.env.SP_ADMIN_PASSWORD;
const SHOTS = process.env.SP_SCREENSHOTS || '';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function api(method, path, body) {
  const response = await fetch(`${URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

let browser;
let page;
const PAUSES = [40, 80, 120, 160, 220, 300, 420, 650, 900, 1400];

before(async () => {
  await api('PATCH', '/v1/project', {
    slos: [{ event_type: 'order.paid', objective_percent: 99.5, threshold_seconds: 1 }],
  });
  for (const [i, pause] of PAUSES.entries()) {
    const id = `evt_order_paid_${i}`;
    await api('POST', '/v1/receipt', { provider: 'stripe', event_id: id, event_type: 'order.paid', subject: `cus_${300 + i}` });
    await sleep(pause);
    await api('POST', '/v1/result', { provider: 'stripe', event_id: id, status: 'success' });
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(20_000);
  page = await context.newPage();
  await page.goto(`${URL}/login`);
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${URL}/`);
});

after(async () => {
  await browser?.close();
});

describe('the Analytics page', () => {
  test('shows the time-to-effect figures GET /v1/stats gives', async () => {
    const stats = await api('GET', '/v1/stats?window=7d');
    const orderPaid = stats.by_event_type.find((t) => t.event_type === 'order.paid');
    assert.equal(orderPaid.received, PAUSES.length);
    assert.equal(orderPaid.time_to_effect.count, PAUSES.length);
    // Each measured time is at least its pause (the result came after it).
    assert.ok(orderPaid.time_to_effect.p50_ms >= PAUSES[4] * 0.99, JSON.stringify(orderPaid));

    await page.getByRole('link', { name: 'Analytics' }).click();
    await page.waitForURL(/\/analytics/);
    await page.getByRole('heading', { name: /Time to effect per day/ }).waitFor();
    // The chart is server-rendered SVG: one p50 and one p95 point per day
    // with a success, at the API's values.
    const today = stats.daily.at(-1);
    for (const series of ['p50', 'p95']) {
      const point = page.locator(`#tte-chart circle.s-${series}[data-day="${today.day}"]`);
      assert.equal(Number(await point.getAttribute('data-ms')), today.time_to_effect[`${series}_ms`]);
      const line = await page.locator(`#tte-chart path[data-series="${series}"]`).getAttribute('d');
      assert.match(line, /^M[\d.]+,[\d.]+/);
    }
    const row = page.locator('#by-type tr[data-event-type="order.paid"]');
    assert.equal(await row.locator('td').first().innerText(), String(PAUSES.length));
    // The SLO row is there; nothing is due yet (a receipt counts once its
    // 5-minute slot has ended and the threshold passed), so no attainment.
    const slo = page.locator('#slos tr[data-event-type="order.paid"]');
    assert.match(await slo.innerText(), /99\.5% within 1 s/);
    const sloStatus = stats.slos.find((s) => s.event_type === 'order.paid');
    assert.equal(await slo.locator('.attainment').innerText(),
      sloStatus.attainment_percent === null ? '—' : `${sloStatus.attainment_percent.toFixed(2)}%`);
    assert.ok(await page.locator('svg.slo-chart').first().isVisible());
    if (SHOTS) {
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'analytics.png'), fullPage: true });
    }
  });

  test('the overview table gains p95 time to effect', async () => {
    await page.goto(`${URL}/`);
    const header = page.getByRole('columnheader', { name: 'p95 time to effect' });
    assert.ok(await header.isVisible());
    const cell = page.locator('table.types tr', { hasText: 'order.paid' }).locator('td[data-label="p95 time to effect"]');
    assert.match(await cell.innerText(), /\d+(\.\d)? (ms|s)/);
  });
});
