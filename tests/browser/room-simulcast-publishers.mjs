// Issue 12's browser test of simulcast publishers: three people join one Room one after another,
// each publishing their camera in three simulcast layers (the room client's default). Every
// join makes the SFU renegotiate the connections of those already there, to add the newcomer's
// tracks; through getStats, each page must keep decoding the camera of each of the others, frame
// counts rising over more than ten seconds after the last join.

import { DESKTOP, check, context, expectMediaFlowing, launch, run, signIn, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';
const OWNER_EMAIL = process.env.CONVENE_OWNER_EMAIL || 'olive@example.org';
const OWNER_HANDLE = process.env.CONVENE_OWNER_HANDLE || 'olive';
// Small windows: small tiles take the low layers, which keeps three pages' decoding light.
const WINDOW = { ...DESKTOP, viewport: { width: 640, height: 400 } };
// How long every picture must keep moving after the last join, how often it is sampled, and how
// long a picture may stand still. A layer that lost its binding stops for good (and without the
// SFU keeping the bindings, the first people's pictures never showed on the others' pages at
// all). Each time the SFU asks a publisher to resume a paused layer Chromium reconfigures its
// encoder, and on a loaded machine its layers then go quiet for seconds: the SFU no longer wakes a
// layer for a newcomer whose tile size is unknown or while a layer stalls, and the longest still
// measured on a loaded 2-core machine went from 2-4.5 s to about 1 s; 4 s leaves room for load.
const WATCH_MS = 12000;
const SAMPLE_MS = 500;
const FROZEN_MS = 4000;

/** Per participant id in `ids`: of that person's camera, the page's video frames decoded, and
 * (to tell a stalled stream from a stalled decoder when a picture freezes) packets received and
 * frame width. */
async function camerasOf(page, ids) {
  return page.evaluate(async (ids) => {
    const pc = window.__convene && window.__convene.pc;
    const out = {};
    for (const id of ids) {
      out[id] = { frames: 0, packets: 0, width: 0 };
      const video = document.querySelector(`.grid .tile[data-participant="${id}"][data-kind="camera"] video`);
      const track = video && video.srcObject && video.srcObject.getVideoTracks()[0];
      const receiver = pc && track && pc.getReceivers().find((r) => r.track === track);
      if (!receiver) continue;
      (await receiver.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
        out[id].frames += r.framesDecoded || 0;
        out[id].packets += r.packetsReceived || 0;
        out[id].width = Math.max(out[id].width, r.frameWidth || 0);
      });
    }
    return out;
  }, ids);
}

/** Per participant id in `ids`: video frames the page decoded of that person's camera. */
async function framesFrom(page, ids) {
  const cameras = await camerasOf(page, ids);
  return Object.fromEntries(Object.entries(cameras).map(([id, c]) => [id, c.frames]));
}

async function join(page, name) {
  await page.goto(ROOM);
  await page.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
  if (name) await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
  const offer = await page.evaluate(() => window.__convene.pc.localDescription.sdp);
  check(/a=simulcast:send q;h;f/.test(offer), `${name || 'the owner'}: the camera is not offered in three layers`);
}

await run('room-simulcast-publishers', 115000, async () => {
  const browser = await launch();
  const pages = [];
  for (let i = 0; i < 3; i += 1) pages.push(await (await context(browser, WINDOW)).newPage());
  const [owner, ann, bo] = pages;
  const names = ['Olive Owner', 'Ann Second', 'Bo Third'];

  await step('three people join one after another, each publishing simulcast by default', async () => {
    await signIn(owner, OWNER_EMAIL, OWNER_HANDLE);
    await join(owner);
    // Alone for a while, as people are: by then the SFU's receiver reports have told Chromium
    // that its layers are known, and Chromium no longer names them in each packet.
    await new Promise((res) => setTimeout(res, 3000));
    await join(ann, names[1]);
    await expectMediaFlowing(owner, 'owner with Ann', { audio: false, timeoutMs: 30000 });
    await join(bo, names[2]);
  });

  const ids = await Promise.all(pages.map((p) => p.evaluate(() => window.__convene.me.id)));
  check(new Set(ids).size === 3, `participant ids ${ids}`);

  await step('each page decodes the camera of each of the others', async () => {
    // Three pages encoding and decoding on a loaded machine start slowly; without the SFU keeping
    // the layers bound, the first people's pictures never showed at all.
    const deadline = Date.now() + 45000;
    for (;;) {
      const frames = await Promise.all(pages.map((p, i) => framesFrom(p, ids.filter((_, j) => j !== i))));
      const missing = frames.flatMap((f, i) => Object.entries(f).filter(([, n]) => n < 10).map(([id]) => `${names[i]} of ${names[ids.indexOf(id)]}`));
      if (missing.length === 0) break;
      check(Date.now() < deadline, `no picture within 45 s: ${missing.join(', ')}`);
      await new Promise((res) => setTimeout(res, 500));
    }
  });

  await step(`every picture keeps moving for ${WATCH_MS / 1000} s`, async () => {
    const sample = () => Promise.all(pages.map((p, i) => camerasOf(p, ids.filter((_, j) => j !== i))));
    const first = await sample();
    let before = first;
    // Per page and person: since when the picture has not moved, and the longest such time.
    const still = first.map((f) => Object.fromEntries(Object.keys(f).map((id) => [id, { since: Date.now(), longest: 0, from: 0 }])));
    const end = Date.now() + WATCH_MS;
    while (Date.now() < end) {
      await new Promise((res) => setTimeout(res, SAMPLE_MS));
      const now = await sample();
      now.forEach((f, i) => Object.entries(f).forEach(([id, c]) => {
        const s = still[i][id];
        if (c.frames > before[i][id].frames) s.since = Date.now();
        if (Date.now() - s.since > s.longest) [s.longest, s.from] = [Date.now() - s.since, s.since];
        check(s.longest < FROZEN_MS, `${names[i]}'s picture of ${names[ids.indexOf(id)]} froze for ${FROZEN_MS / 1000} s: ${JSON.stringify(before[i][id])} then ${JSON.stringify(c)}`);
      }));
      before = now;
    }
    before.forEach((f, i) => console.log(`     ${names[i]} decodes ${Object.entries(f)
      .map(([id, c]) => `${names[ids.indexOf(id)]} at ${((c.frames - first[i][id].frames) / (WATCH_MS / 1000)).toFixed(1)} fps, ${c.width} px, still for at most ${still[i][id].longest} ms${still[i][id].longest ? ` from ${new Date(still[i][id].from).toISOString().slice(11, 23)}` : ''}`)
      .join('; ')}`));
  });
});
