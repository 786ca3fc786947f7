// Issue 12's browser test: a person publishes their camera in three simulcast layers through the
// room client; two others watch, one at a desktop window with a large tile, one in a window so
// small that the tile is a thumbnail. Through getStats, the small window decodes a narrower
// picture and receives fewer video bytes than the large one, and the publisher stops encoding
// the full layer that no tile needs. (The watchers publish nothing, which keeps three Chromium
// pages within what the test machine can encode.)

import { BASE as ROOM_BASE, DESKTOP, check, context, expectMediaFlowing, launch, run, signIn, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';
const OWNER_EMAIL = process.env.CONVENE_OWNER_EMAIL || 'olive@example.org';
const OWNER_HANDLE = process.env.CONVENE_OWNER_HANDLE || 'olive';
// Wide and low: three tiles side by side, each a thumbnail in both directions.
const THUMBNAILS = { viewport: { width: 760, height: 330 } };

/** Inbound video of the page's connection: widest decoded picture and video bytes so far. */
async function video(page) {
  return page.evaluate(async () => {
    const pc = window.__convene && window.__convene.pc;
    const out = { frameWidth: 0, widths: [], bytes: 0 };
    if (!pc) return out;
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
      out.bytes += r.bytesReceived || 0;
      if (r.frameWidth) out.widths.push(r.frameWidth);
      out.frameWidth = Math.max(out.frameWidth, r.frameWidth || 0);
    });
    return out;
  });
}

/** The rids the page's camera sender encodes now. */
async function activeLayers(page) {
  return page.evaluate(() => {
    const sender = window.__convene.senders.video;
    return sender ? sender.getParameters().encodings.filter((e) => e.active).map((e) => e.rid) : [];
  });
}

async function join(page, name, { listener = false } = {}) {
  await page.goto(ROOM);
  if (!listener) await page.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
  if (name) await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
}

/** A context whose camera and microphone are blocked: its page joins to watch and listen. */
async function listener(browser, options) {
  const ctx = await context(browser, options);
  await ctx.addInitScript(() => {
    if (!navigator.mediaDevices) return;
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  return ctx.newPage();
}

await run('room-simulcast', 110000, async () => {
  const browser = await launch();
  const ownerCtx = await context(browser, DESKTOP);
  // Simulcast publishing is opt-in in the room client for now.
  await ownerCtx.addInitScript(() => {
    try {
      window.localStorage.setItem('convene.simulcast', 'on');
    } catch {
      // about:blank has no storage; the Room page does.
    }
  });
  const owner = await ownerCtx.newPage();
  const large = await listener(browser, DESKTOP);
  const small = await listener(browser, THUMBNAILS);

  await step('the owner publishes simulcast, two others join to watch', async () => {
    await signIn(owner, OWNER_EMAIL, OWNER_HANDLE);
    await join(owner);
    const offer = await owner.evaluate(() => window.__convene.pc.localDescription.sdp);
    check(/a=simulcast:send q;h;f/.test(offer), 'the camera is not offered in three layers');
    await join(large, 'Lara Large', { listener: true });
    await join(small, 'Tim Thumbnail', { listener: true });
  });

  await step('both watchers decode video', async () => {
    await Promise.all([
      expectMediaFlowing(large, 'large window', { audio: false, timeoutMs: 30000 }),
      expectMediaFlowing(small, 'small window', { audio: false, timeoutMs: 30000 }),
    ]);
  });

    await step('the thumbnail gets a narrower picture than the large tile', async () => {
    const source = await owner.evaluate(() => window.__convene.media.video.getSettings().width);
    const deadline = Date.now() + 30000;
    let [big, thumbs] = await Promise.all([video(large), video(small)]);
    while (!(thumbs.frameWidth > 0 && thumbs.frameWidth < big.frameWidth)) {
      check(Date.now() < deadline, `no narrower picture for the thumbnail within 30 s: large ${JSON.stringify(big)}, small ${JSON.stringify(thumbs)}`);
      await new Promise((res) => setTimeout(res, 500));
      [big, thumbs] = await Promise.all([video(large), video(small)]);
    }
    const ownerId = await owner.evaluate(() => window.__convene.me.id);
    const tiles = await Promise.all([large, small].map((p) => p.evaluate((id) => {
      const v = document.querySelector(`.grid .tile[data-participant="${id}"] video`);
      return v ? `${Math.round(v.getBoundingClientRect().width)}x${Math.round(v.getBoundingClientRect().height)}` : 'none';
    }, ownerId)));
    console.log(`     camera ${source} px wide; large tile ${tiles[0]} decodes ${big.frameWidth} px, thumbnail ${tiles[1]} decodes ${thumbs.frameWidth} px`);
  });

  await step('the thumbnail costs fewer video bytes', async () => {
    // Bytes over the same few seconds on both pages.
    const [b0, s0] = await Promise.all([video(large), video(small)]);
    await new Promise((res) => setTimeout(res, 4000));
    const [b1, s1] = await Promise.all([video(large), video(small)]);
    const bigRate = ((b1.bytes - b0.bytes) * 8) / 4000;
    const smallRate = ((s1.bytes - s0.bytes) * 8) / 4000;
    console.log(`     video received: large window ${bigRate.toFixed(0)} kbit/s, small window ${smallRate.toFixed(0)} kbit/s`);
    check(smallRate > 0 && smallRate < bigRate, 'the small window does not receive less video than the large one');
  });

  await step('the publisher stops encoding the layer no tile needs', async () => {
    // Two watchers: one tile wants the half layer at most, the other the quarter.
    const deadline = Date.now() + 15000;
    let layers = await activeLayers(owner);
    while (layers.includes('f')) {
      check(Date.now() < deadline, `the full layer is still encoded: ${layers}`);
      await new Promise((res) => setTimeout(res, 500));
      layers = await activeLayers(owner);
    }
    console.log(`     the owner's camera sends ${layers.join(', ') || 'nothing'}`);
  });

  await step('hiding the thumbnail\'s page stops its video', async () => {
    const sent = async () => (await (await fetch(new URL('/metrics', ROOM_BASE))).text()).match(/convene_media_layer_switches_total (\d+)/)[1];
    const before = Number(await sent());
    await small.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    const deadline = Date.now() + 10000;
    while (Number(await sent()) === before) {
      check(Date.now() < deadline, 'no layer switch after the page was hidden');
      await new Promise((res) => setTimeout(res, 250));
    }
  });
});
