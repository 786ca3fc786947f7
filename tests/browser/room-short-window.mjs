// A Room on a phone held sideways: three people meet, two of them in short landscape windows (a
// sideways phone that publishes its camera, and a smaller one that only watches and so carries
// the listen-only notice). In both short windows the stage takes most of the height, every
// control is on screen and uncovered, no control lies over anyone's picture, the others' video
// decodes, and the sizes the client reports to the SFU are the sizes the tiles are shown at. Then
// the owner shares their screen: it keeps at least 60 % of the sideways stage, clear of the
// controls too.

import { DESKTOP, check, context, expectMediaFlowing, joinRoom, launch, listener, run, shot, signIn, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';
const OWNER_EMAIL = process.env.CONVENE_OWNER_EMAIL || 'olive@example.org';
const OWNER_HANDLE = process.env.CONVENE_OWNER_HANDLE || 'olive';
const SIDEWAYS = { viewport: { width: 740, height: 330 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const SMALL_SIDEWAYS = { viewport: { width: 640, height: 360 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
// The share of the window's height the stage keeps at least. Before the short-window layout the
// title row and the controls (in two rows at 740 px), and at 640x360 the listen-only notice too,
// left the stage 31 % of 740x330 and 27 % of 640x360.
const STAGE_SHARE = 0.75;
// A control smaller than this (CSS pixels) is too hard to hit with a finger.
const MIN_TARGET = 40;

/**
 * Where everything is on `page`: the window, the stage, each tile's picture (the part of the
 * video that shows, which for a screen fitted with `contain` is smaller than its box), each
 * control, and whether the control at its own centre is what a tap there reaches.
 */
async function layoutOf(page) {
  return page.evaluate(() => {
    const rect = (el) => {
      const r = el.getBoundingClientRect();
      return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height };
    };
    const picture = (video) => {
      const box = rect(video);
      const contain = getComputedStyle(video).objectFit === 'contain';
      if (!contain || !video.videoWidth || !video.videoHeight) return box;
      const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
      const width = video.videoWidth * scale;
      const height = video.videoHeight * scale;
      const left = box.left + (box.width - width) / 2;
      const top = box.top + (box.height - height) / 2;
      return { left, top, right: left + width, bottom: top + height, width, height };
    };
    const tiles = [...document.querySelectorAll('.call-stage .tile')].map((el) => ({
      who: el.dataset.participant,
      kind: el.dataset.kind,
      local: el.classList.contains('is-local'),
      box: rect(el),
      picture: picture(el.querySelector('video')),
    }));
    const controls = [...document.querySelectorAll('.call-controls button, .grid-pager:not([hidden]) button')]
      .filter((el) => el.checkVisibility())
      .map((el) => {
        const box = rect(el);
        const hit = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
        return { name: el.getAttribute('aria-label') || el.textContent.trim(), box, reachable: !!hit && el.contains(hit) };
      });
    // Passing notices let taps through, but must not hide a control either.
    const toasts = [...document.querySelectorAll('.toast')].map((el) => ({ text: el.textContent, box: rect(el) }));
    const stage = document.querySelector('.call-stage');
    const spotlight = document.querySelector('.spotlight');
    return {
      width: window.innerWidth,
      height: window.innerHeight,
      stage: rect(stage),
      spotlight: spotlight.hidden ? null : rect(spotlight),
      tiles,
      controls,
      toasts,
    };
  });
}

const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
const inside = (r, width, height) => r.left >= -0.5 && r.top >= -0.5 && r.right <= width + 0.5 && r.bottom <= height + 0.5;
const size = (r) => `${Math.round(r.width)}x${Math.round(r.height)}`;

/** Checks the short-window promises on `page` and says what it measured. */
async function checkShortLayout(page, who, { remoteTiles }) {
  const layout = await layoutOf(page);
  const share = layout.stage.height / layout.height;
  console.log(`     ${who} ${layout.width}x${layout.height}: stage ${size(layout.stage)} (${Math.round(share * 100)} % of the height), ` +
    `tiles ${layout.tiles.map((t) => size(t.picture)).join(', ')}, controls ${layout.controls.map((c) => `${c.name} ${size(c.box)}`).join(', ')}`);
  check(share >= STAGE_SHARE, `${who}: the stage has ${Math.round(share * 100)} % of the window's height, less than ${STAGE_SHARE * 100} %`);
  const remote = layout.tiles.filter((t) => !t.local);
  check(remote.length === remoteTiles, `${who}: ${remote.length} remote tiles, not ${remoteTiles}`);
  for (const tile of layout.tiles) {
    check(inside(tile.box, layout.width, layout.height), `${who}: the tile of ${tile.who} (${tile.kind}) reaches outside the window: ${JSON.stringify(tile.box)}`);
  }
  // A readable tile, as the grid's pages promise (MIN_TILE in room.js).
  for (const tile of remote.filter((t) => t.kind === 'camera')) {
    check(tile.box.width >= 159 && tile.box.height >= 89, `${who}: ${tile.who}'s tile is only ${size(tile.box)}`);
  }
  for (const name of ['Microphone', 'Camera', 'Share screen', 'People', 'Chat', 'Settings', 'Leave']) {
    check(layout.controls.some((c) => c.name.startsWith(name)), `${who}: no visible ${name} control (${layout.controls.map((c) => c.name).join(', ')})`);
  }
  for (const control of layout.controls) {
    check(inside(control.box, layout.width, layout.height), `${who}: ${control.name} is not inside the window: ${JSON.stringify(control.box)}`);
    check(control.box.width >= MIN_TARGET && control.box.height >= MIN_TARGET, `${who}: ${control.name} is only ${size(control.box)}`);
    check(control.reachable, `${who}: something covers ${control.name}`);
    for (const toast of layout.toasts) {
      check(!overlap(control.box, toast.box), `${who}: the notice "${toast.text}" lies over ${control.name}`);
    }
    for (const tile of layout.tiles) {
      check(!overlap(control.box, tile.picture), `${who}: ${control.name} ${JSON.stringify(control.box)} lies over the picture of ${tile.who} (${tile.kind}) ${JSON.stringify(tile.picture)}`);
    }
  }
  return layout;
}

/**
 * Waits until the last tile report `page` sent gives each remote picture the size it is shown at
 * (device pixels), and calls it visible.
 */
async function expectReportedSizes(page, who) {
  const ok = await page
    .waitForFunction(() => {
      const call = window.__convene;
      if (!call || !call.ui.lastTiles) return false;
      const reported = JSON.parse(call.ui.lastTiles);
      const ratio = window.devicePixelRatio || 1;
      const tiles = [...call.ui.tiles.values()].filter((t) => !t.local && t.stream && t.el.isConnected);
      if (!tiles.length || reported.length < tiles.length) return false;
      return tiles.every((tile) => {
        const track = tile.stream.getVideoTracks()[0];
        const entry = reported.find((r) => r.mid === call.trackMids.get(track) || r.track_id === track.id);
        const video = tile.video;
        const box = video.getBoundingClientRect();
        let { width, height } = box;
        if (getComputedStyle(video).objectFit === 'contain' && video.videoWidth && video.videoHeight) {
          const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
          width = video.videoWidth * scale;
          height = video.videoHeight * scale;
        }
        return entry && entry.visible && Math.abs(entry.width - width * ratio) <= 2 && Math.abs(entry.height - height * ratio) <= 2;
      });
    }, null, { timeout: 10000 })
    .then(() => true, () => false);
  const last = await page.evaluate(() => window.__convene.ui.lastTiles);
  check(ok, `${who}: the last tile report does not match the tiles on screen: ${last}`);
  console.log(`     ${who} reports ${last}`);
}

/** The size (CSS pixels, "WxH") of the first remote tile's video on `page`. */
const remoteTileSize = (page) => page.evaluate(() => {
  const r = document.querySelector('.grid .tile:not(.is-local) video').getBoundingClientRect();
  return `${Math.round(r.width)}x${Math.round(r.height)}`;
});

/** Waits until `page` shows the video of everyone in `ids` on their tiles. */
async function expectPictures(page, ids) {
  await page.waitForFunction((list) => list.every((id) => {
    const v = document.querySelector(`.grid .tile[data-participant="${id}"] video`);
    return v && v.videoWidth > 0 && !v.closest('.tile').classList.contains('video-off');
  }), ids, { timeout: 20000 });
}

await run('room-short-window', 110000, async () => {
  const browser = await launch();
  const owner = await (await context(browser, DESKTOP)).newPage();
  const sideways = await (await context(browser, SIDEWAYS)).newPage();
  const small = await listener(browser, SMALL_SIDEWAYS);

  await step('the owner joins on a desktop, one phone held sideways joins with its camera, a smaller one to watch', async () => {
    await signIn(owner, OWNER_EMAIL, OWNER_HANDLE);
    await joinRoom(owner, ROOM);
    await joinRoom(sideways, ROOM, 'Sid Sideways');
    await joinRoom(small, ROOM, 'Wendy Watcher', { listener: true });
  });

  const ids = {};
  for (const [page, who] of [[owner, 'owner'], [sideways, 'sideways'], [small, 'small']]) {
    ids[who] = await page.evaluate(() => window.__convene.me.id);
  }

  await step('both short windows decode the others\u2019 video', async () => {
    await Promise.all([
      expectMediaFlowing(sideways, 'sideways phone', { audio: false, timeoutMs: 30000 }),
      expectMediaFlowing(small, 'small phone', { audio: false, timeoutMs: 30000 }),
    ]);
    await expectPictures(sideways, [ids.owner]);
    await expectPictures(small, [ids.owner, ids.sideways]);
  });

  await step('in both, the stage has the height and the controls cover no one', async () => {
    await checkShortLayout(sideways, 'sideways 740x330', { remoteTiles: 2 });
    await checkShortLayout(small, 'small 640x360', { remoteTiles: 2 });
    await shot(sideways, 'room-short-sideways', { fullPage: false });
    await shot(small, 'room-short-small', { fullPage: false });
  });

  await step('the sizes reported to the SFU are the sizes shown', async () => {
    await expectReportedSizes(sideways, 'sideways');
    await expectReportedSizes(small, 'small');
  });

  await step('turned upright and back, the phone reports the sizes of its tiles as they change', async () => {
    // The tiles take their new size once the client has measured the new stage.
    const resized = async (viewport) => {
      const before = await remoteTileSize(sideways);
      await sideways.setViewportSize(viewport);
      await sideways.waitForFunction((old) => {
        const el = document.querySelector('.grid .tile:not(.is-local) video');
        const r = el && el.getBoundingClientRect();
        return r && `${Math.round(r.width)}x${Math.round(r.height)}` !== old;
      }, before, { timeout: 10000 });
    };
    await resized({ width: SIDEWAYS.viewport.height, height: SIDEWAYS.viewport.width });
    await expectReportedSizes(sideways, 'upright');
    await resized(SIDEWAYS.viewport);
    await expectReportedSizes(sideways, 'sideways again');
    await checkShortLayout(sideways, 'sideways again', { remoteTiles: 2 });
  });

  await step('the controls work by keyboard in the short window', async () => {
    const mic = sideways.getByRole('button', { name: 'Microphone' });
    await mic.focus();
    await sideways.keyboard.press('Enter');
    check((await mic.getAttribute('aria-pressed')) === 'false', 'the microphone did not turn off');
    await owner.locator(`.grid .tile[data-participant="${ids.sideways}"][data-mic="off"]`).waitFor({ timeout: 10000 });
    await sideways.keyboard.press('Enter');
    check((await mic.getAttribute('aria-pressed')) === 'true', 'the microphone did not turn back on');
    // The people panel opens over the stage and closes with Escape, leaving the controls in reach.
    await sideways.getByRole('button', { name: /^People/ }).click();
    await sideways.locator('.people-list').getByText('Wendy Watcher').waitFor();
    await shot(sideways, 'room-short-sideways-people', { fullPage: false });
    await sideways.keyboard.press('Escape');
    await sideways.locator('#call-panel').waitFor({ state: 'hidden' });
  });

  await step('a shared screen keeps most of the sideways stage, clear of the controls', async () => {
    await owner.getByRole('button', { name: 'Share screen' }).click();
    await owner.getByRole('button', { name: 'Stop sharing' }).waitFor({ timeout: 10000 });
    await sideways.waitForFunction(() => {
      const v = document.querySelector('.spotlight .tile.is-screen video');
      return v && v.videoWidth > 0;
    }, null, { timeout: 30000 });
    const layout = await checkShortLayout(sideways, 'sideways with a screen', { remoteTiles: 3 });
    const spot = layout.spotlight;
    check(spot && spot.height >= 0.6 * layout.stage.height - 1, `the screen has ${spot ? size(spot) : 'no spotlight'} of a ${size(layout.stage)} stage`);
    await expectReportedSizes(sideways, 'sideways with a screen');
    await shot(sideways, 'room-short-sideways-screen', { fullPage: false });
    await owner.getByRole('button', { name: 'Stop sharing' }).click();
    await sideways.locator('.spotlight .tile.is-screen').waitFor({ state: 'detached', timeout: 15000 });
  });

  await step('everyone leaves', async () => {
    for (const page of [small, sideways, owner]) {
      await page.getByRole('button', { name: 'Leave' }).click();
      await page.getByRole('heading', { name: 'You left the room' }).waitFor();
    }
  });
});
