// Shared helpers for Convene's headless-Chromium tests. The Rust side (tests/tests/e2e/browser.rs)
// starts an instance and a mail endpoint, then runs one script per test with:
//   CONVENE_BASE_URL     the instance, e.g. http://localhost:41234
//   CONVENE_MAIL_URL     GET {url}/mail?to=EMAIL → newest message to EMAIL as JSON
//   CONVENE_SCREENSHOTS  folder for PNG screenshots
// A script prints one line per step and exits non-zero with the reason on the first failure.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = required('CONVENE_BASE_URL');
export const MAIL = required('CONVENE_MAIL_URL');
export const SHOTS = process.env.CONVENE_SCREENSHOTS || 'screenshots';
export const CHROMIUM = process.env.CONVENE_CHROMIUM || '/usr/bin/chromium';

export const DESKTOP = { viewport: { width: 1280, height: 800 } };
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`FAIL: ${name} is not set (run through cargo test -p convene-tests --test e2e browser)`);
    process.exit(2);
  }
  return value;
}

const browsers = [];

/** Debian's Chromium, headless, with a fake camera and microphone. */
export async function launch({ fakeMedia = true } = {}) {
  const args = [
    '--no-sandbox',
    '--allow-loopback-in-peer-connection',
    '--disable-background-networking',
    '--disable-component-update',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (fakeMedia) args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  browsers.push(browser);
  return browser;
}

/** A new context whose pages fail the test on uncaught script errors. */
export async function context(browser, options = {}) {
  const ctx = await browser.newContext({ baseURL: BASE, ...options });
  // Fail fast: nothing here should take long on loopback.
  ctx.setDefaultTimeout(10000);
  ctx.on('page', (page) => watch(page));
  return ctx;
}

export const pageErrors = [];
const consoleLines = [];
const pages = [];
function watch(page) {
  pages.push(page);
  page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    consoleLines.push(`[${msg.type()}] ${page.url()}: ${msg.text()}`);
    if (msg.type() === 'error' && /convene/i.test(msg.text())) pageErrors.push(`${page.url()}: ${msg.text()}`);
  });
}

/** On failure: what each open page looked like and what the consoles said. */
async function evidence() {
  let n = 0;
  for (const page of pages) {
    if (page.isClosed()) continue;
    n += 1;
    const log = await page.evaluate(() => (window.__convene ? window.__convene.log.join('\n') : '')).catch(() => '');
    if (log) writeFileSync(join(SHOTS, `failed-${n}.log`), log);
    await page.screenshot({ path: join(SHOTS, `failed-${n}.png`) }).then(
      () => console.error(`     failure screenshot ${join(SHOTS, `failed-${n}.png`)} (${page.url()})`),
      () => {},
    );
  }
  for (const line of pageErrors) console.error(`     page error ${line}`);
  for (const line of consoleLines.slice(-30)) console.error(`     console ${line}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

let started = Date.now();
/** Runs one named step and prints how long it took. */
export async function step(name, fn) {
  const t = Date.now();
  try {
    const value = await fn();
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
    return value;
  } catch (err) {
    console.log(`FAIL ${name} (${Date.now() - t} ms)`);
    throw err;
  }
}

/** Runs the script body with an overall time limit; exits 0 only when it finished cleanly. */
export async function run(name, limitMs, body) {
  started = Date.now();
  mkdirSync(SHOTS, { recursive: true });
  const timer = setTimeout(() => {
    console.error(`FAIL: ${name} did not finish within ${limitMs / 1000} s`);
    process.exit(3);
  }, limitMs);
  let code = 0;
  try {
    await body();
    check(pageErrors.length === 0, `script errors on the pages:\n  ${pageErrors.join('\n  ')}`);
    console.log(`PASS ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (err) {
    console.error(`FAIL: ${name}: ${err && err.stack ? err.stack : err}`);
    await evidence().catch(() => {});
    code = 1;
  } finally {
    clearTimeout(timer);
    for (const b of browsers) await b.close().catch(() => {});
  }
  process.exit(code);
}

export async function shot(page, name, { fullPage = true } = {}) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage, animations: 'disabled' });
  console.log(`     screenshot ${path}`);
}

/** How many messages have reached `email` so far (at the mail endpoint `mail`). */
export async function mailCount(email, mail = MAIL) {
  const r = await fetch(`${mail}/mail?to=${encodeURIComponent(email)}`);
  if (r.status === 404) return 0;
  return (await r.json()).count;
}

/** Waits for message number `after + 1` to `email` and returns the sign-in code in it. */
export async function codeFor(email, after, mail = MAIL) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const r = await fetch(`${mail}/mail?to=${encodeURIComponent(email)}`);
    if (r.ok) {
      const message = await r.json();
      const code = /Your code: (\d{6})/.exec(message.body);
      if (message.count > after && code) return code[1];
    }
    await new Promise((res) => setTimeout(res, 150));
  }
  throw new Error(`no sign-in code mailed to ${email} within 15 s`);
}

/** Signs up through the pages: form, code from the mail, verify. `mail` is the endpoint of
 * the page's instance when it is not CONVENE_MAIL_URL's. */
export async function signUp(page, { email, handle, name, mail = MAIL }) {
  const before = await mailCount(email, mail);
  await page.goto('/');
  await page.getByRole('link', { name: 'Create your Passport' }).first().click();
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Handle').fill(handle);
  await page.getByLabel('Display name').fill(name);
  await page.getByRole('button', { name: 'Create Passport' }).click();
  await enterCode(page, email, before, mail);
  await page.getByRole('link', { name: `@${handle}` }).waitFor();
}

/** Signs in through the pages with a code from the mail. */
export async function signIn(page, email, handle, mail = MAIL) {
  const before = await mailCount(email, mail);
  await page.goto('/signin');
  await page.getByLabel('Email address').fill(email);
  await page.getByRole('button', { name: 'Email me a code' }).click();
  await enterCode(page, email, before, mail);
  await page.getByRole('link', { name: `@${handle}` }).waitFor();
}

async function enterCode(page, email, before, mail = MAIL) {
  await page.waitForURL(/\/verify/);
  const code = await codeFor(email, before, mail);
  await page.getByLabel('6-digit code').fill(code);
  await page.getByRole('button', { name: 'Continue' }).click();
}

/** Inbound RTP totals of the page's room connection (window.__convene.pc). */
export async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.__convene && window.__convene.pc;
    const out = { framesDecoded: 0, frameWidth: 0, audioPackets: 0, audioSamples: 0, connection: pc ? pc.connectionState : 'none' };
    if (!pc) return out;
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'video') {
        out.framesDecoded += r.framesDecoded || 0;
        out.frameWidth = Math.max(out.frameWidth, r.frameWidth || 0);
      } else if (r.kind === 'audio') {
        out.audioPackets += r.packetsReceived || 0;
        out.audioSamples += r.totalSamplesReceived || 0;
      }
    });
    return out;
  });
}

/** Waits until the page decodes video frames (rising, with a width) and receives audio. */
export async function expectMediaFlowing(page, who, { video = true, audio = true, timeoutMs = 20000 } = {}) {
  const first = await inbound(page);
  const deadline = Date.now() + timeoutMs;
  let last = first;
  while (Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 400));
    last = await inbound(page);
    const videoOk = !video || (last.framesDecoded >= first.framesDecoded + 10 && last.frameWidth > 0);
    const audioOk = !audio || last.audioPackets >= first.audioPackets + 20 || last.audioSamples > first.audioSamples + 4800;
    if (videoOk && audioOk) return last;
  }
  throw new Error(`${who}: media not flowing within ${timeoutMs / 1000} s: first ${JSON.stringify(first)}, last ${JSON.stringify(last)}`);
}

/** Opens the Room at `path` and joins it (as `name`, for a guest); a `listener` page has no
 * camera preview to wait for. */
export async function joinRoom(page, path, name, { listener = false } = {}) {
  await page.goto(path);
  if (!listener) await page.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
  if (name) await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
}

/** A page whose camera and microphone are blocked: it joins to watch and listen. */
export async function listener(browser, options) {
  const ctx = await context(browser, options);
  await ctx.addInitScript(() => {
    if (!navigator.mediaDevices) return;
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  return ctx.newPage();
}
