// Console users and TOTP in headless Chromium, against the server
// scripts/test-browser.sh starts: the admin adds a user on the Users page;
// the user enrols TOTP (the secret read from the page, codes computed here
// with node:crypto — an implementation independent of the server's), signs
// out, signs in with a computed code, uses a recovery code once; the admin
// disables the user from another browser session and the user's next click
// lands on the sign-in page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run scripts/test-browser.sh`);
  return value;
};
const URL = env('SP_URL');
const ADMIN_EMAIL = env('SP_ADMIN_EMAIL');
const ADMIN_PASSWORD = env('SP_ADMIN_PASSWORD');
const TIMEOUT = 20_000;
const USER_EMAIL = `totp-${Date.now()}@example.com`;
const USER_PASSWORD = 'a long enough password';

// RFC 4648 base32 → bytes.
function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[\s=]/g, '').toUpperCase()) {
    const index = alphabet.indexOf(c);
    if (index < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s) for the step `offset` steps from now.
function totp(secret, offset = 0) {
  const step = Math.floor(Date.now() / 1000 / 30) + offset;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const hash = createHmac('sha1', secret).update(counter).digest();
  const at = hash[hash.length - 1] & 0x0f;
  const binary = ((hash[at] & 0x7f) << 24) | (hash[at + 1] << 16) | (hash[at + 2] << 8) | hash[at + 3];
  return String(binary % 1_000_000).padStart(6, '0');
}

let browser;
let admin; // the admin's page
let user; // the new user's page (another browser context)
let secret;
let recovery;

async function signIn(page, email, password) {
  await page.goto(`${URL}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/login/);
}

async function codeStep(page, code) {
  await page.waitForURL(/\/login\/2fa/);
  await page.getByLabel('Code').fill(code);
  await page.getByRole('button', { name: 'Verify' }).click();
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
  });
  const adminContext = await browser.newContext();
  adminContext.setDefaultTimeout(TIMEOUT);
  admin = await adminContext.newPage();
  const userContext = await browser.newContext();
  userContext.setDefaultTimeout(TIMEOUT);
  user = await userContext.newPage();
});

after(async () => {
  await browser?.close();
});

describe('console users and two-factor sign-in', () => {
  test('the admin adds an operator on the Users page', async () => {
    await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD);
    await admin.waitForURL(`${URL}/`);
    await admin.getByRole('link', { name: 'Users' }).click();
    await admin.getByRole('heading', { name: /Users of/ }).waitFor();
    await admin.getByLabel('Email').fill(USER_EMAIL);
    await admin.locator('#new-role').selectOption('operator');
    await admin.getByLabel('Set a password now').check();
    await admin.getByLabel('Password (at least 10 characters)').fill(USER_PASSWORD);
    await admin.getByRole('button', { name: 'Add user' }).click();
    await admin.getByText(`Added ${USER_EMAIL} as operator.`).waitFor();
    const row = admin.locator(`tr[data-user="${USER_EMAIL}"]`);
    assert.equal((await row.locator('.status').innerText()).trim(), 'active');
  });

  test('the user enrols TOTP from the QR page with a computed code', async () => {
    await signIn(user, USER_EMAIL, USER_PASSWORD);
    await user.waitForURL(`${URL}/`);
    await user.getByRole('link', { name: USER_EMAIL }).click();
    await user.waitForURL(/\/account\/2fa/);
    assert.ok(await user.locator('.qr svg').isVisible(), 'the QR code is an inline SVG');
    secret = base32Decode(await user.locator('#totp-secret').innerText());
    assert.equal(secret.length, 20);
    await user.getByLabel('Code from the app').fill(totp(secret));
    await user.getByRole('button', { name: 'Turn on' }).click();
    await user.locator('#recovery-codes').waitFor();
    recovery = await user.locator('#recovery-codes li').allInnerTexts();
    assert.equal(recovery.length, 10);
    assert.match(await user.locator('#totp-status').innerText(), /is on/);
  });

  test('sign out, then sign in with the password and a computed code', async () => {
    await signOut(user);
    await signIn(user, USER_EMAIL, USER_PASSWORD);
    // The code that confirmed enrolment is spent; the next step's code is
    // inside the ±1 step window and not used yet.
    await codeStep(user, totp(secret, 1));
    await user.waitForURL(`${URL}/`);
    await user.getByRole('heading', { name: /Overview/ }).waitFor();
  });

  test('a recovery code works once', async () => {
    await user.goto(`${URL}/`);
    await signOut(user);
    await signIn(user, USER_EMAIL, USER_PASSWORD);
    await codeStep(user, recovery[0]);
    await user.waitForURL(`${URL}/`);
    await signOut(user);
    await signIn(user, USER_EMAIL, USER_PASSWORD);
    await codeStep(user, recovery[0]);
    await user.locator('#login-error').waitFor();
    assert.match(await user.locator('#login-error').innerText(), /used already/);
    // Another recovery code gets in.
    await user.getByLabel('Code').fill(recovery[1]);
    await user.getByRole('button', { name: 'Verify' }).click();
    await user.waitForURL(`${URL}/`);
  });

  test('the admin disables the user; their next click lands on sign-in', async () => {
    // The user is signed in, on the overview.
    await user.getByRole('heading', { name: /Overview/ }).waitFor();
    await admin.goto(`${URL}/users`);
    const row = admin.locator(`tr[data-user="${USER_EMAIL}"]`);
    await row.getByRole('button', { name: 'Disable' }).click();
    await admin.getByText(`Disabled ${USER_EMAIL}`).waitFor();
    assert.equal((await admin.locator(`tr[data-user="${USER_EMAIL}"] .status`).innerText()).trim(), 'disabled');

    await user.getByRole('link', { name: 'Incidents' }).click();
    await user.waitForURL(/\/login/);
    await signIn(user, USER_EMAIL, USER_PASSWORD);
    await user.locator('#login-error').waitFor();
    assert.match(await user.locator('#login-error').innerText(), /disabled/);
  });
});
