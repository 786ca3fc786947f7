// Issue 3's browser test for blocked devices: a guest whose browser refuses the camera and
// microphone is told so plainly, joins to watch and listen, and sees and hears another guest.

import { DESKTOP, check, context, expectMediaFlowing, launch, run, shot, step } from './lib.mjs';

const ROOM = process.env.CONVENE_ROOM_PATH || '/spaces/book-club/rooms/reading';

await run('room-denied', 55000, async () => {
  const browser = await launch();
  const blockedCtx = await context(browser, DESKTOP);
  // As a browser does when the person (or a policy) said no.
  await blockedCtx.addInitScript(() => {
    if (!navigator.mediaDevices) return; // about:blank is not a secure context
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
  });
  const blocked = await blockedCtx.newPage();
  const other = await (await context(browser, DESKTOP)).newPage();

  await step('the join panel explains the blocked devices', async () => {
    await blocked.goto(ROOM);
    await blocked.getByText('Your browser is blocking the camera and microphone').waitFor({ timeout: 10000 });
    check(await blocked.getByRole('button', { name: 'Join' }).isEnabled(), 'Join should stay available');
    check((await blocked.getByRole('button', { name: 'Microphone' }).isDisabled()), 'the microphone toggle should be disabled');
    await shot(blocked, 'room-blocked-join-panel');
  });

  await step('joins to watch and listen', async () => {
    await blocked.getByLabel('Your name').fill('Quiet Listener');
    await blocked.getByRole('button', { name: 'Join' }).click();
    await blocked.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
    await blocked.getByText('You joined to watch and listen').waitFor();
  });

  await step('another guest joins with camera and microphone', async () => {
    await other.goto(ROOM);
    await other.getByLabel('Your name').fill('Talking Guest');
    await other.getByRole('button', { name: 'Join' }).click();
    await other.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
  });

  await step('the listener decodes the other\u2019s video and receives audio', async () => {
    const got = await expectMediaFlowing(blocked, 'listener');
    console.log(`     listener: ${got.framesDecoded} frames at ${got.frameWidth}px, ${got.audioPackets} audio packets`);
    const listenerId = await blocked.evaluate(() => window.__convene.me.id);
    // The other side shows the listener without picture and with the microphone off.
    await other.locator(`.grid .tile[data-participant="${listenerId}"].video-off[data-mic="off"]`).waitFor({ timeout: 10000 });
    await shot(blocked, 'room-blocked-in-call', { fullPage: false });
  });
});
