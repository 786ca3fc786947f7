// Issue 12's paging test: a person on a small phone-sized screen meets four others (webrtc-rs
// peers the Rust side started, each publishing video). Not everyone fits at a readable size, so
// the grid shows a page at a time with previous/next controls, the one who speaks on the first.
// Through getStats: a person on
// another page sends us no video bytes (their tile is reported hidden and the SFU forwards
// nothing), and turning to their page with the keyboard shows them and their video flows.

import { check, context, launch, run, shot, signIn, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';
const OWNER_EMAIL = process.env.CONVENE_OWNER_EMAIL || 'olive@example.org';
const OWNER_HANDLE = process.env.CONVENE_OWNER_HANDLE || 'olive';
const PEERS = Number(process.env.CONVENE_PEERS || '4');
// The one peer whose audio is loud: the SFU makes them the active speaker.
const SPEAKER = process.env.CONVENE_SPEAKER || '';
// A phone's width with the on-screen keyboard or the browser's bars taking much of the height:
// two rows of two readable tiles, so five people (the owner included) need two pages.
const SMALL_PHONE = { viewport: { width: 390, height: 390 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/** Video bytes received so far from each remote participant, by participant id. */
async function videoBytes(page) {
  return page.evaluate(async () => {
    const call = window.__convene;
    const out = {};
    if (!call || !call.pc) return out;
    const stats = [];
    (await call.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') stats.push(r);
    });
    for (const [id, p] of call.participants) {
      out[id] = 0;
      for (const track of p.tracks) {
        if (track.kind !== 'video') continue;
        const mid = call.trackMids.get(track);
        for (const r of stats) {
          if (r.trackIdentifier === track.id || (mid && r.mid === mid)) out[id] += r.bytesReceived || 0;
        }
      }
    }
    return out;
  });
}

/** How many video bytes each participant sent us over `ms`. */
async function growth(page, ms) {
  const before = await videoBytes(page);
  await new Promise((res) => setTimeout(res, ms));
  const after = await videoBytes(page);
  return Object.fromEntries(Object.keys(after).map((id) => [id, after[id] - (before[id] || 0)]));
}

/** Waits until the client's last tile report calls exactly the people on the page visible (the
 * SFU acts on it within its next layer choice, twice a second), then measures two seconds of
 * video bytes while the page stays the same. */
async function steadyGrowth(page) {
  for (let attempt = 0; attempt < 3; attempt++) {
    await page.waitForFunction(() => {
      const call = window.__convene;
      const shown = new Set([...document.querySelectorAll('.grid .tile:not(.is-local)[data-participant]')].map((e) => e.dataset.participant));
      const line = call.log.filter((l) => l.includes(' out {"type":"tiles"')).slice(-1)[0];
      if (!line) return false;
      const report = JSON.parse(line.slice(line.indexOf('{')));
      const visible = new Set(report.tiles.filter((t) => t.visible).map((t) => t.mid));
      for (const [id, p] of call.participants) {
        const mids = p.tracks.filter((t) => t.kind === 'video').map((t) => call.trackMids.get(t));
        if (mids.some((m) => visible.has(m)) !== shown.has(id)) return false;
      }
      return true;
    }, null, { timeout: 10000 });
    await new Promise((res) => setTimeout(res, 1000));
    const before = await onPage(page);
    // Media from everyone on the page has started at all (slow on a busy machine).
    const deadline = Date.now() + 15000;
    for (;;) {
      const bytes = await videoBytes(page);
      if (before.every((id) => bytes[id] > 0)) break;
      check(Date.now() < deadline, `no video at all from someone on the page within 15 s: ${JSON.stringify(bytes)}`);
      await new Promise((res) => setTimeout(res, 250));
    }
    const grew = await growth(page, 2000);
    if (JSON.stringify(await onPage(page)) === JSON.stringify(before)) return grew;
    console.log('     the page changed while measuring (a new active speaker?): again');
  }
  throw new Error('the page never held still for two seconds');
}

const onPage = (page) => page.$$eval('.grid .tile:not(.is-local)[data-participant]', (els) => els.map((e) => e.dataset.participant));
const everyone = (page) => page.evaluate(() => [...window.__convene.participants.keys()]);
const status = (page) => page.locator('.grid-pager .pager-status').textContent();

await run('room-paging', 80000, async () => {
  const browser = await launch();
  const owner = await (await context(browser, SMALL_PHONE)).newPage();

  await step('owner signs in and joins on a small phone screen', async () => {
    await signIn(owner, OWNER_EMAIL, OWNER_HANDLE);
    await owner.goto(ROOM);
    await owner.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
    await owner.getByRole('button', { name: 'Join' }).click();
    await owner.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
  });

  let pages = 0;
  await step(`the ${PEERS} others do not fit: the grid pages`, async () => {
    await owner.waitForFunction((n) => window.__convene && window.__convene.participants.size === n, PEERS, { timeout: 15000 });
    // Everyone's video track is known before pages are judged.
    await owner.waitForFunction(() => [...window.__convene.participants.values()].every((p) => p.tracks.some((t) => t.kind === 'video')), null, { timeout: 15000 });
    const pager = owner.getByRole('navigation', { name: 'Pages of people' });
    await pager.waitFor({ timeout: 5000 });
    const text = await status(owner);
    const m = /^1 of (\d+)$/.exec(text);
    check(m && Number(m[1]) >= 2, `pager says "${text}"`);
    pages = Number(m[1]);
    const shown = await onPage(owner);
    check(shown.length >= 1 && shown.length < PEERS, `${shown.length} of ${PEERS} on the first page`);
    // Every tile on the page is at least the readable size.
    const small = await owner.$$eval('.grid .tile', (els) => els.map((e) => e.getBoundingClientRect()).filter((r) => r.width < 159 || r.height < 89).length);
    check(small === 0, `${small} tiles smaller than 160x90`);
    console.log(`     ${shown.length} others per page, ${pages} pages`);
    await shot(owner, 'room-phone-paged', { fullPage: false });
  });

  await step('the one who speaks is on the first page', async () => {
    check(SPEAKER, 'CONVENE_SPEAKER is not set');
    await owner.locator(`.grid .tile.speaking[data-participant="${SPEAKER}"]`).waitFor({ timeout: 10000 });
    check((await status(owner)).startsWith('1 of'), 'not on the first page');
  });

  let offPage = '';
  await step('a person on another page sends no video; one on this page does', async () => {
    const shown = await onPage(owner);
    offPage = (await everyone(owner)).find((id) => !shown.includes(id));
    check(offPage !== SPEAKER, 'the speaker is off the first page');
    check(offPage, 'nobody is off the page');
    const grew = await steadyGrowth(owner);
    console.log(`     video bytes in 2 s: ${JSON.stringify(grew)}`);
    check(grew[offPage] === 0, `${offPage} (off the page) sent ${grew[offPage]} video bytes`);
    for (const id of shown) check(grew[id] > 2000, `${id} (on the page) sent only ${grew[id]} video bytes`);
  });

  await step('the keyboard turns to their page; they show and their video flows', async () => {
    const next = owner.getByRole('button', { name: 'Next page of people' });
    for (let turned = 1; turned < pages && !(await onPage(owner)).includes(offPage); turned++) {
      await next.focus();
      await owner.keyboard.press('Enter');
      await owner.waitForFunction((t) => document.querySelector('.grid-pager .pager-status').textContent === t, `${turned + 1} of ${pages}`);
    }
    check((await onPage(owner)).includes(offPage), `${offPage} never showed`);
    const grew = await steadyGrowth(owner);
    console.log(`     on page ${await status(owner)}, video bytes in 2 s: ${JSON.stringify(grew)}`);
    check(grew[offPage] > 2000, `${offPage} (now on the page) sent only ${grew[offPage]} video bytes`);
    await shot(owner, 'room-phone-next-page', { fullPage: false });
    // And back with the previous button.
    await owner.getByRole('button', { name: 'Previous page of people' }).click();
    check(/^\d+ of \d+$/.test(await status(owner)), 'pager lost its status');
  });

  await step('owner leaves', async () => {
    await owner.getByRole('button', { name: 'Leave' }).click();
    await owner.getByRole('heading', { name: 'You left the room' }).waitFor();
  });
});
