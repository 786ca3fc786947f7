// Issue 12's screen-share test: the owner publishes their camera and shares their screen through
// the room client; two others watch, one on a high-density desktop screen, one in a window so
// small that every tile is a thumbnail. The screen is offered in the two layers that suit text
// (half and full resolution, no quarter), the desktop decodes it at the screen's full size, the
// thumbnail window at less, and when the sharing stops its tile leaves both pages. (The watchers
// publish nothing, which keeps three Chromium pages within what the test machine can encode.)

import { DESKTOP, check, context, expectMediaFlowing, joinRoom, launch, listener, run, signIn, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';
const OWNER_EMAIL = process.env.CONVENE_OWNER_EMAIL || 'olive@example.org';
const OWNER_HANDLE = process.env.CONVENE_OWNER_HANDLE || 'olive';
// Wide and low: tiles side by side, each a thumbnail.
const THUMBNAILS = { viewport: { width: 760, height: 330 } };
// Large tiles at two device pixels each: wider than the screen's half layer.
const SHARP_DESKTOP = { ...DESKTOP, deviceScaleFactor: 2 };

/** The shared screen as `page` shows it: the decoded picture's width and the tile's size. */
async function screenTile(page) {
  return page.evaluate(() => {
    const video = document.querySelector('.tile.is-screen video');
    // What is on the page instead, for a failure's message.
    const tiles = [...document.querySelectorAll('.tile')].map((t) => `${t.className}:${t.dataset.kind}:${t.querySelector('video')?.videoWidth ?? '-'}`);
    if (!video) return { shown: false, width: 0, tile: 'none', tiles };
    const box = video.getBoundingClientRect();
    return { shown: true, width: video.videoWidth, tile: `${Math.round(box.width)}x${Math.round(box.height)}` };
  });
}

/** Waits until `accept(screen)` holds on `page`, or fails with `what` after `timeoutMs`. */
async function waitForScreen(page, what, accept, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let screen = await screenTile(page);
  while (!accept(screen)) {
    check(Date.now() < deadline, `${what} within ${timeoutMs / 1000} s: ${JSON.stringify(screen)}`);
    await new Promise((res) => setTimeout(res, 500));
    screen = await screenTile(page);
  }
  return screen;
}

await run('room-screen-share', 100000, async () => {
  const browser = await launch();
  const owner = await (await context(browser, DESKTOP)).newPage();
  const large = await listener(browser, SHARP_DESKTOP);
  const small = await listener(browser, THUMBNAILS);
  let screenWidth = 0;

  await step('the owner publishes their camera, two others join to watch', async () => {
    await signIn(owner, OWNER_EMAIL, OWNER_HANDLE);
    await joinRoom(owner, ROOM);
    await joinRoom(large, ROOM, 'Lara Large', { listener: true });
    await joinRoom(small, ROOM, 'Tim Thumbnail', { listener: true });
    await Promise.all([
      expectMediaFlowing(large, 'large window', { audio: false, timeoutMs: 30000 }),
      expectMediaFlowing(small, 'small window', { audio: false, timeoutMs: 30000 }),
    ]);
  });

  await step('the owner shares their screen in the layers that suit text', async () => {
    await owner.getByRole('button', { name: 'Share screen' }).click();
    await owner.getByRole('button', { name: 'Stop sharing' }).waitFor({ timeout: 10000 });
    // The offer with the screen follows the click: wait for it rather than race it.
    await owner.waitForFunction(
      () => /a=simulcast:send h;f/.test(window.__convene.pc?.localDescription?.sdp || ''),
      null,
      { timeout: 15000 },
    );
    screenWidth = await owner.evaluate(() => window.__convene.screen.track.getSettings().width);
    check(screenWidth > 0, 'the shared screen has no width');
  });

  await step('the desktop decodes the screen at its full size', async () => {
    const seen = await waitForScreen(large, `no full-size screen (${screenWidth} px) on the desktop`, (s) => s.width === screenWidth, 30000);
    console.log(`     screen ${screenWidth} px wide; desktop tile ${seen.tile} decodes ${seen.width} px`);
  });

  await step('the thumbnail window decodes it smaller', async () => {
    const seen = await waitForScreen(small, 'no smaller screen picture in the thumbnail window', (s) => s.width > 0 && s.width < screenWidth, 30000);
    console.log(`     thumbnail tile ${seen.tile} decodes ${seen.width} px`);
  });

  await step('when the sharing stops, its tile leaves both pages', async () => {
    await owner.getByRole('button', { name: 'Stop sharing' }).click();
    for (const [page, who] of [[large, 'desktop'], [small, 'thumbnail window']]) {
      await waitForScreen(page, `the screen tile is still on the ${who}`, (s) => !s.shown, 15000);
    }
  });
});
