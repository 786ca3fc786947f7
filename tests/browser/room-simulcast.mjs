// Issue 12's browser test: a person publishes their camera in three simulcast layers through the
// room client (its default); two others watch, one on a high-density desktop screen whose large
// tile needs the full layer, one in a window so small that the tile is a thumbnail. Through
// getStats: Chromium sends all three layers (its uplink estimate, fed by the SFU's
// transport-wide feedback, covers them), the thumbnail decodes the quarter layer and receives
// fewer video bytes than the large tile, and once the large tile is hidden the publisher stops
// encoding the full layer. (The watchers publish nothing, which keeps three Chromium pages
// within what the test machine can encode.)

import { BASE as ROOM_BASE, DESKTOP, check, context, expectMediaFlowing, joinRoom, launch, listener, run, signIn, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';
const OWNER_EMAIL = process.env.CONVENE_OWNER_EMAIL || 'olive@example.org';
const OWNER_HANDLE = process.env.CONVENE_OWNER_HANDLE || 'olive';
// Wide and low: three tiles side by side, each a thumbnail in both directions.
const THUMBNAILS = { viewport: { width: 760, height: 330 } };
// Tiles of about 500 CSS px at two device pixels each: wider than the half layer.
const SHARP_DESKTOP = { ...DESKTOP, deviceScaleFactor: 2 };

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

/** The page's uplink: the browser's own estimate and, per rid, bytes sent so far, frame width
 * and what limits its quality. */
async function uplink(page) {
  return page.evaluate(async () => {
    const pc = window.__convene && window.__convene.pc;
    const out = { estimate: 0, layers: {} };
    if (!pc) return out;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate) out.estimate = r.availableOutgoingBitrate;
      if (r.type === 'outbound-rtp' && r.kind === 'video' && r.rid) {
        out.layers[r.rid] = { bytes: r.bytesSent || 0, frames: r.framesEncoded || 0, width: r.frameWidth || 0, limit: r.qualityLimitationReason };
      }
    });
    return out;
  });
}

/** Waits until every layer of `rids` goes out (bytes rising over a second, frames with a width)
 * and every layer of `once` has been encoded (the SFU pauses a layer no tile takes). */
async function expectLayersSent(page, rids, once, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let before = await uplink(page);
  for (;;) {
    await new Promise((res) => setTimeout(res, 1000));
    const now = await uplink(page);
    const rates = Object.fromEntries(rids.map((rid) => {
      const [a, b] = [before.layers[rid], now.layers[rid]];
      return [rid, a && b ? ((b.bytes - a.bytes) * 8) / 1000 : 0];
    }));
    const shown = rids.map((rid) => `${rid} ${now.layers[rid] ? now.layers[rid].width : 0} px ${rates[rid].toFixed(0)} kbit/s (${now.layers[rid] ? now.layers[rid].limit : '-'})`);
    const encoded = once.map((rid) => `${rid} ${now.layers[rid] ? now.layers[rid].frames : 0} frames so far`);
    const line = `estimate ${(now.estimate / 1000).toFixed(0)} kbit/s; ${[...shown, ...encoded].join(', ')}`;
    // A layer at a few kbit/s is padding or a frozen encoder, not video.
    const flowing = rids.every((rid) => rates[rid] > 20 && now.layers[rid].width > 0);
    if (flowing && once.every((rid) => now.layers[rid] && now.layers[rid].frames > 0)) return line;
    check(Date.now() < deadline, `not every layer sent within ${timeoutMs / 1000} s: ${line}`);
    before = now;
  }
}

/** The rids the page's camera sender encodes now. */
async function activeLayers(page) {
  return page.evaluate(() => {
    const sender = window.__convene.senders.video;
    return sender ? sender.getParameters().encodings.filter((e) => e.active).map((e) => e.rid) : [];
  });
}

await run('room-simulcast', 110000, async () => {
  const browser = await launch();
  // Simulcast is the room client's default: nothing to switch on.
  const owner = await (await context(browser, DESKTOP)).newPage();
  const large = await listener(browser, SHARP_DESKTOP);
  const small = await listener(browser, THUMBNAILS);

  await step('the owner publishes simulcast, two others join to watch', async () => {
    await signIn(owner, OWNER_EMAIL, OWNER_HANDLE);
    await joinRoom(owner, ROOM);
    // The offer is made once the socket is up: wait for it rather than race it.
    await owner.waitForFunction(() => window.__convene.pc && window.__convene.pc.localDescription, null, { timeout: 15000 });
    const offer = await owner.evaluate(() => window.__convene.pc.localDescription.sdp);
    check(/a=simulcast:send q;h;f/.test(offer), 'the camera is not offered in three layers');
    await joinRoom(large, ROOM, 'Lara Large', { listener: true });
    await joinRoom(small, ROOM, 'Tim Thumbnail', { listener: true });
  });

  await step('both watchers decode video', async () => {
    await Promise.all([
      expectMediaFlowing(large, 'large window', { audio: false, timeoutMs: 30000 }),
      expectMediaFlowing(small, 'small window', { audio: false, timeoutMs: 30000 }),
    ]);
  });

  await step('Chromium sends all three layers', async () => {
    // The large tile takes the full layer and the thumbnail the quarter; nobody takes the half
    // now, so the SFU may already have paused it.
    console.log(`     owner uplink: ${await expectLayersSent(owner, ['q', 'f'], ['h'], 30000)}`);
  });

    await step('the thumbnail gets a narrower picture than the large tile', async () => {
    const source = await owner.evaluate(() => window.__convene.media.video.getSettings().width);
    const deadline = Date.now() + 30000;
    // The quarter layer, or less when Chromium scaled it down for its CPU.
    const quarter = Math.ceil(source / 4);
    let [big, thumbs] = await Promise.all([video(large), video(small)]);
    while (!(thumbs.frameWidth > 0 && thumbs.frameWidth <= quarter && thumbs.frameWidth < big.frameWidth)) {
      check(Date.now() < deadline, `no quarter-layer picture for the thumbnail within 30 s: large ${JSON.stringify(big)}, small ${JSON.stringify(thumbs)}`);
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

  await step('hiding the large tile stops the full layer', async () => {
    await large.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    // Only the thumbnail watches now: it takes the quarter layer.
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
