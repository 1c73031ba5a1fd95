// Browser test of the dashboard that micro-serve serves at `/`.
//
//   cd serving/tests/browser && npm ci
//   MICRO_URL=http://127.0.0.1:8080 node --test dashboard.test.mjs
//
// MICRO_URL (required) is where the dashboard is served; it may carry a
// query such as `?api=http://host:port` for a dashboard hosted apart from the
// API. SCREENSHOT_DIR (default: docs/screenshots at the repository root)
// receives a PNG of every page at 1280×800 and at 390×844. CHROMIUM names
// the browser (default: Debian's /usr/bin/chromium); no browser is
// downloaded.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = process.env.MICRO_URL;
if (!BASE) {
  throw new Error('MICRO_URL is not set: point it at a running micro-serve, e.g. MICRO_URL=http://127.0.0.1:8080');
}
const SHOTS = path.resolve(process.env.SCREENSHOT_DIR || path.join(here, '../../../docs/screenshots'));
const TIMEOUT = 15_000;
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

/** The dashboard URL for a hash route, keeping MICRO_URL's query. */
function url(route) {
  const u = new URL(BASE);
  u.hash = route;
  return u.toString();
}

let browser;
let desktop;
const pageErrors = [];
const state = { userId: null, email: null };

function watch(page, name) {
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`${name} console: ${m.text()}`);
  });
  return page;
}

async function shot(page, name) {
  await page.evaluate(async () => {
    window.scrollTo(0, 0);
    if (document.fonts) await document.fonts.ready;
  });
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: true, animations: 'disabled' });
}

/** Waits until the element's text matches the pattern. */
async function waitText(page, selector, pattern, timeout = TIMEOUT) {
  await page.waitForFunction(
    ([sel, source, flags]) => {
      const el = document.querySelector(sel);
      return !!el && new RegExp(source, flags).test(el.textContent || '');
    },
    [selector, pattern.source, pattern.flags],
    { timeout },
  );
  return (await page.textContent(selector)) || '';
}

async function noHorizontalOverflow(page, width) {
  const sw = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(sw <= width, `page is ${sw}px wide at a ${width}px viewport (horizontal overflow)`);
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  desktop = await browser.newContext({ viewport: DESKTOP });
});

after(async () => {
  if (browser) await browser.close();
});

test('registration shows the API field error, then registers the user', { timeout: 60_000 }, async () => {
  const page = watch(await desktop.newPage(), 'users');
  await page.goto(url('/users'));
  await page.waitForSelector('#reg-form');
  await page.waitForSelector('[data-testid="users-table"] tbody tr');

  await page.fill('#reg-email', 'not-an-email');
  await page.fill('#reg-name', 'Browser Test');
  await page.selectOption('#reg-gender', 'female');
  await page.fill('#reg-birth-year', '1990');
  await page.fill('#reg-adults', '2');
  await page.fill('#reg-kids', '2');
  await page.selectOption('#reg-marital', 'married');
  await page.click('#reg-submit');

  const error = await waitText(page, '#reg-email-error', /\S/);
  assert.ok(await page.isVisible('#reg-email-error'), 'the e-mail error is visible');
  assert.match(error, /e-?mail/i, `the e-mail error mentions the e-mail: ${error}`);
  assert.equal(await page.getAttribute('#reg-email', 'aria-invalid'), 'true');
  assert.match(await page.getAttribute('#reg-email', 'aria-describedby'), /reg-email-error/);
  assert.ok(await page.isVisible('#reg-form .error-summary'), 'an error summary is shown');

  state.email = `browser-${Date.now()}@example.com`;
  await page.fill('#reg-email', state.email);
  await page.click('#reg-submit');
  await page.waitForSelector('[data-testid="register-result"] .notice--success');
  assert.ok(!(await page.isVisible('#reg-email-error')), 'the e-mail error is gone');
  state.userId = (await page.textContent('[data-testid="new-user-id"]')).trim();
  assert.ok(state.userId, 'the new user id is shown');
  const row = `[data-testid="users-table"] tr[data-user-id="${state.userId}"]`;
  await page.waitForSelector(row);
  assert.match(await page.textContent(row), new RegExp(state.email.replace(/[.]/g, '\\.')));
  await shot(page, 'users.png');
  await page.close();
});

test('editing a user shows the API field error, then saves only what changed', { timeout: 60_000 }, async () => {
  assert.ok(state.userId, 'a user was registered');
  const page = watch(await desktop.newPage(), 'edit');
  await page.goto(url('/users'));
  const row = `[data-testid="users-table"] tr[data-user-id="${state.userId}"]`;
  await page.waitForSelector(row);
  await page.click(`${row} [data-testid="edit-user"]`);
  await page.waitForSelector('#edit-card:not([hidden])');
  assert.equal(await page.inputValue('#edit-email'), state.email, 'the form holds what was declared');
  assert.equal(await page.inputValue('#edit-kids'), '2');

  // A birth year the API refuses: its message is shown next to the field.
  await page.fill('#edit-birth-year', '1800');
  await page.click('#edit-submit');
  const error = await waitText(page, '#edit-birth-year-error', /\S/);
  assert.match(error, /1900/, `the birth-year error gives the range: ${error}`);
  assert.equal(await page.getAttribute('#edit-birth-year', 'aria-invalid'), 'true');
  await shot(page, 'users-edit.png');

  await page.fill('#edit-birth-year', '1990');
  await page.fill('#edit-kids', '3');
  await page.fill('#edit-name', '');
  await page.click('#edit-submit');
  const saved = await waitText(page, '[data-testid="edit-result"]', /Saved/);
  assert.match(saved, /Changed: name, kids/, `only the changed fields were sent and saved: ${saved}`);
  assert.ok(await page.isHidden('#edit-card'), 'the form closes once saved');
  await waitText(page, row, /Kids 3/);
  assert.doesNotMatch(await page.textContent(row), /Browser Test/, 'the emptied name was removed');
  await page.close();
});

test('posted interactions update the open profile without a reload', { timeout: 90_000 }, async () => {
  assert.ok(state.userId, 'a user was registered');
  const profile = watch(await desktop.newPage(), 'profile');
  await profile.goto(url(`/profiles/${encodeURIComponent(state.userId)}`));
  await waitText(profile, '[data-testid="interaction-count"]', /^0$/);
  await profile.evaluate(() => { window.__dashboardMarker = 'not reloaded'; });

  const events = watch(await desktop.newPage(), 'events');
  await events.goto(url('/events'));
  await events.waitForSelector('#ix-form');
  await events.fill('#ix-user', state.userId);

  // A 422 answer puts its message next to the field it names.
  // The types offered are the API's (its OpenAPI enum): the seed's wire values.
  const offered = await events.$$eval('#ix-type option', (os) => os.map((o) => o.value));
  assert.deepEqual(offered, ['PURCHACE', 'SAVE', 'INQUERY', 'VIEW', 'SHARE']);
  await events.selectOption('#ix-type', { label: 'Purchase' });
  await events.fill('#ix-amount', '19.99');
  await events.fill('#ix-currency', '');
  await events.click('#ix-submit');
  const currencyError = await waitText(events, '#ix-currency-error', /\S/);
  assert.match(currencyError, /required|ISO|currency/i, currencyError);
  assert.equal(await events.getAttribute('#ix-currency', 'aria-invalid'), 'true');

  const posts = [
    { type: 'PURCHASE', label: 'Purchase', amount: '19.99', currency: 'USD' },
    { type: 'VIEW', label: 'View' },
    { type: 'SAVE', label: 'Save' },
  ];
  for (const p of posts) {
    await events.selectOption('#ix-type', { label: p.label });
    await events.fill('#ix-amount', p.amount || '');
    await events.fill('#ix-currency', p.currency || '');
    await events.click('#ix-submit');
    const text = await waitText(events, '[data-testid="interaction-result"]', new RegExp(`Accepted: ${p.label}`));
    assert.match(text, new RegExp(state.userId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.ok(!(await events.isVisible('#ix-currency-error')), 'no field error after an accepted post');
  }
  await events.waitForSelector('[data-testid="events-table"] tbody tr[data-event-id]');
  await shot(events, 'events.png');

  // The profile page was never reloaded, and it shows the three interactions.
  await waitText(profile, '[data-testid="interaction-count"]', /^3$/, TIMEOUT);
  assert.equal(await profile.evaluate(() => window.__dashboardMarker), 'not reloaded');
  await profile.bringToFront();
  await shot(profile, 'profile.png');

  // Profiles and Models through the navigation, still without a reload.
  await profile.click('nav a[data-nav="profiles"]');
  await profile.waitForSelector('[data-testid="profiles-table"] tbody tr[data-user-id]');
  await shot(profile, 'profiles.png');

  await profile.click('nav a[data-nav="models"]');
  const version = await waitText(profile, '[data-testid="serving-version"]', /\S/);
  await profile.waitForSelector('[data-version]');
  const versions = await profile.$$eval('[data-version]', (els) => els.map((e) => e.getAttribute('data-version')));
  assert.ok(versions.length > 0 && versions.every(Boolean), 'a model version is shown');
  // The server under test serves the committed demo model: it must be shown.
  assert.ok(versions.includes(version.trim()), `the serving version ${version} is one of ${versions.join(', ')}`);
  const charts = await profile.$$eval('svg.chart', (els) => els.map((e) => ({ label: e.getAttribute('aria-label'), title: e.querySelector('title')?.textContent })));
  assert.ok(charts.length >= 1, 'at least one chart is drawn');
  assert.ok(charts.every((c) => c.label && c.title), 'charts carry a title and an aria-label');
  assert.ok(await profile.$('svg[data-testid="cold-start-chart"]'), 'a cold-start chart is drawn');
  assert.ok(await profile.$('svg[data-testid="confusion-chart"]'), 'a confusion matrix is drawn');
  await shot(profile, 'models.png');
  assert.equal(await profile.evaluate(() => window.__dashboardMarker), 'not reloaded');
  await profile.close();
  await events.close();
});

test('every page fits a 390-px phone without horizontal overflow', { timeout: 120_000 }, async () => {
  assert.ok(state.userId, 'a user was registered');
  const phone = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true, deviceScaleFactor: 1 });
  const page = watch(await phone.newPage(), 'phone');
  const pages = [
    ['/users', '[data-testid="users-table"] tbody tr', 'users-phone.png'],
    ['/profiles', '[data-testid="profiles-table"] tbody tr', 'profiles-phone.png'],
    [`/profiles/${encodeURIComponent(state.userId)}`, '[data-testid="interaction-count"]', 'profile-phone.png'],
    ['/events', '[data-testid="events-table"] tbody tr', 'events-phone.png'],
    ['/models', 'svg.chart', 'models-phone.png'],
  ];
  for (const [route, ready, file] of pages) {
    await page.goto(url(route));
    await page.waitForSelector(ready);
    if (route.startsWith('/profiles/')) await waitText(page, '[data-testid="interaction-count"]', /^3$/);
    await noHorizontalOverflow(page, PHONE.width);
    await shot(page, file);
    await noHorizontalOverflow(page, PHONE.width);
  }
  await phone.close();
});

test('the registration form works from the keyboard', { timeout: 60_000 }, async () => {
  const page = watch(await desktop.newPage(), 'keyboard');
  await page.goto(url('/users'));
  await page.waitForSelector('#reg-form');
  let reached = false;
  const visited = [];
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.textContent.trim().slice(0, 30)));
    visited.push(id);
    reached = id === 'reg-email';
  }
  assert.ok(reached, `Tab from the top reaches the first registration field (visited: ${visited.join(' → ')})`);
  const email = `keyboard-${Date.now()}@example.com`;
  await page.keyboard.type(email);
  assert.equal(await page.inputValue('#reg-email'), email);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'reg-name');
  await page.keyboard.type('Key Board');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-testid="register-result"] .notice--success');
  const id = (await page.textContent('[data-testid="new-user-id"]')).trim();

  // Deleting shows what was removed (the confirm() dialog is accepted).
  page.once('dialog', (d) => d.accept());
  await page.click(`[data-testid="users-table"] tr[data-user-id="${id}"] button.btn--danger`);
  const removed = await waitText(page, '[data-testid="users-result"]', /Removed user/);
  assert.match(removed, /1 registration/);
  await page.close();
});

test('no script errors on any page', () => {
  assert.deepEqual(pageErrors, []);
});
