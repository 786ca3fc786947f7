// Issue 9's browser test: one Passport, Rooms anywhere. Two instances on loopback: A (Ada's
// home, CONVENE_A_URL, mail at CONVENE_A_MAIL_URL) and B (CONVENE_BASE_URL, Bob's Book Club).
// Ada starts on B's Room page, names her Passport, confirms on A, comes back to B with a ticket
// and meets Bob; each decodes the other's video and Bob sees her as @ada@A. Then the same for a
// locked Room with its code, and for a members-only Room after Bob lets her in on B's members
// page.
//
// Both instances are on `localhost`, so the browser sends each one's cookies to the other (a
// cookie is not bound to a port): when Ada goes back to A after B gave her a visitor session, A
// asks her to sign in again, which is the "signed out, A signs them in first" path.

import { BASE, DESKTOP, check, codeFor, context, expectMediaFlowing, launch, mailCount, run, shot, signIn, signUp, step } from './lib.mjs';

const A = process.env.CONVENE_A_URL;
const A_MAIL = process.env.CONVENE_A_MAIL_URL;
if (!A || !A_MAIL) {
  console.error('FAIL: CONVENE_A_URL and CONVENE_A_MAIL_URL are not set (run through cargo test -p convene-tests --test e2e browser_visits)');
  process.exit(2);
}
const A_HOST = new URL(A).host;
const B_HOST = new URL(BASE).host;
const ADA = { email: 'ada@example.org', handle: 'ada', name: 'Ada Okafor', mail: A_MAIL };
const ADA_ADDRESS = `@ada@${A_HOST}`;
const BOB = { email: 'bob@example.org', handle: 'bob', name: 'Bob Baker' };
const SPACE = '/spaces/book-club';

const me = (page) => page.evaluate(() => window.__convene && window.__convene.me.id);
const tileOf = (page, id) => page.locator(`.grid .tile[data-participant="${id}"]`);

/** On A: signs Ada in when A asks (her A session may be gone, see above), then waits for the
 * visit page. */
async function onVisitPage(ada) {
  await ada.waitForURL((url) => url.host === A_HOST && (url.pathname === '/visit' || url.pathname === '/signin'), {
    waitUntil: 'domcontentloaded',
    timeout: 20000,
  });
  if (new URL(ada.url()).pathname === '/signin') {
    console.log('     A asks Ada to sign in first');
    const before = await mailCount(ADA.email, A_MAIL);
    await ada.getByLabel('Email address').fill(ADA.email);
    await ada.getByRole('button', { name: 'Email me a code' }).click();
    await ada.waitForURL(/\/verify/);
    const code = await codeFor(ADA.email, before, A_MAIL);
    await ada.getByLabel('6-digit code').fill(code);
    await ada.getByRole('button', { name: 'Continue' }).click();
    await ada.waitForURL((url) => url.host === A_HOST && url.pathname === '/visit');
  }
  await ada.locator('#remote-room').waitFor();
}

/** Ada on A's visit page for a Room of B: confirms, lands in B's Room page as a visitor. */
async function confirmOnA(ada, roomName, roomPath) {
  await onVisitPage(ada);
  const question = ada.locator('#remote-room form p');
  await question.waitFor();
  const text = (await question.textContent()).replace(/\s+/g, ' ').trim();
  check(text === `Join ${roomName} on ${B_HOST} as ${ADA_ADDRESS}?`, `A asks: ${text}`);
  return async (shotName) => {
    await shot(ada, shotName);
    await ada.locator('#remote-room').getByRole('button', { name: 'Join' }).click({ noWaitAfter: true });
    await ada.waitForURL((url) => url.host === B_HOST && url.pathname === roomPath, { waitUntil: 'domcontentloaded', timeout: 20000 });
    check(!ada.url().includes('ticket'), `the ticket stays out of the address bar: ${ada.url()}`);
  };
}

/** Both in the Room's call: Ada (a visitor on B) and Bob (B's owner); each decodes the other's
 * video and Bob's client names Ada by her address. */
async function meet(ada, bob, roomPath, label) {
  await step(`${label}: Ada, visiting, joins`, async () => {
    await ada.getByText(`You'll join as ${ADA.name} (${ADA_ADDRESS}), visiting with your Passport.`).waitFor();
    await ada.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
    await shot(ada, `visit-${label}-ada-ready`);
    await ada.locator('#room-app').getByRole('button', { name: 'Join' }).click();
    await ada.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
  });

  await step(`${label}: Bob joins`, async () => {
    await bob.goto(roomPath);
    await bob.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
    await bob.locator('#room-app').getByRole('button', { name: 'Join' }).click();
    await bob.locator('#room-app.in-call[data-state="connected"]').waitFor({ timeout: 10000 });
  });

  const adaId = await me(ada);
  const bobId = await me(bob);
  check(adaId && bobId && adaId !== bobId, `participant ids ${adaId} / ${bobId}`);

  await step(`${label}: each decodes the other\u2019s video`, async () => {
    await tileOf(bob, adaId).getByText(ADA.name).waitFor({ timeout: 10000 });
    await tileOf(ada, bobId).getByText(BOB.name).waitFor({ timeout: 10000 });
    const [a, b] = await Promise.all([expectMediaFlowing(ada, 'Ada'), expectMediaFlowing(bob, 'Bob')]);
    console.log(`     Ada: ${a.framesDecoded} frames at ${a.frameWidth}px, ${a.audioPackets} audio packets`);
    console.log(`     Bob: ${b.framesDecoded} frames at ${b.frameWidth}px, ${b.audioPackets} audio packets`);
    for (const [page, other] of [[bob, adaId], [ada, bobId]]) {
      await page.waitForFunction((id) => {
        const v = document.querySelector(`.grid .tile[data-participant="${id}"] video`);
        return v && v.videoWidth > 0 && !v.closest('.tile').classList.contains('video-off');
      }, other, { timeout: 10000 });
    }
  });

  await step(`${label}: Bob sees her as ${ADA_ADDRESS}`, async () => {
    await bob.getByRole('button', { name: /^People/ }).click();
    const handle = bob.locator(`.person[data-participant="${adaId}"] .person-handle`);
    await handle.waitFor();
    const text = (await handle.textContent()).trim();
    check(text === ADA_ADDRESS, `Bob's people list shows Ada as ${text}`);
    // Marked as a visitor, in the list and on her tile; Bob, at home on B, is not.
    const badge = bob.locator(`.person[data-participant="${adaId}"] .visitor-badge`);
    check((await badge.textContent()).trim() === 'Visitor', 'Ada is marked as a visitor in the list');
    check((await badge.getAttribute('title')) === `Visiting with a Passport from ${A_HOST}`, 'the mark says where from');
    await tileOf(bob, adaId).locator('.tile-visitor .visitor-badge').waitFor({ state: 'visible' });
    check((await tileOf(ada, bobId).locator('.tile-visitor .visitor-badge').count()) === 0, 'Bob is not marked on Ada\u2019s screen');
    await ada.getByRole('button', { name: /^People/ }).click();
    const own = ada.locator(`.person[data-participant="${adaId}"] .person-handle`);
    check((await own.textContent()).trim() === ADA_ADDRESS, 'Ada sees her own address in the list');
    check((await ada.locator(`.person[data-participant="${adaId}"] .visitor-badge`).count()) === 1, 'and that she is visiting');
    await shot(bob, `visit-${label}-bob-sees-ada`, { fullPage: false });
    await shot(ada, `visit-${label}-ada-sees-bob`, { fullPage: false });
  });

  await step(`${label}: both leave`, async () => {
    for (const page of [ada, bob]) {
      await page.locator('#room-app').getByRole('button', { name: 'Leave' }).click();
      await page.getByRole('heading', { name: 'You left the room' }).waitFor();
    }
    await tileOf(bob, adaId).waitFor({ state: 'detached', timeout: 10000 }).catch(() => {});
  });
}

await run('visit', 110000, async () => {
  const browser = await launch();
  const ada = await (await context(browser, { ...DESKTOP, baseURL: A })).newPage();
  const bob = await (await context(browser, DESKTOP)).newPage();

  await step('Ada signs up on A; Bob signs in on B', async () => {
    await signUp(ada, ADA);
    await signIn(bob, BOB.email, BOB.handle);
    await shot(ada, 'visit-ada-home-on-a');
  });

  // --- An open Room, starting from B's Room page ---------------------------------------------
  const lobby = `${SPACE}/rooms/lobby`;
  await step('open: Ada names her Passport on B\u2019s Room page', async () => {
    await ada.goto(`${BASE}${lobby}`);
    await ada.getByText('Join with your Passport from another instance').click();
    await ada.getByLabel('Your Passport').fill(ADA_ADDRESS);
    await shot(ada, 'visit-open-1-b-room-page');
    await ada.getByRole('button', { name: 'Continue' }).click({ noWaitAfter: true });
  });
  let join;
  await step('open: A asks Ada to confirm', async () => {
    join = await confirmOnA(ada, 'Lobby', lobby);
  });
  await step('open: confirmed, back in B\u2019s Room', async () => {
    await join('visit-open-2-a-confirm');
    await ada.getByText("You're visiting with your Passport from your own instance.").waitFor();
    await shot(ada, 'visit-open-3-b-room-as-visitor');
  });
  await meet(ada, bob, lobby, 'open');

  // --- A locked Room: the code at B's door, like anyone (Ada is no member of the Space yet) ---
  const vault = `${SPACE}/rooms/vault`;
  await step('locked: Ada confirms on A and gives the code at B\u2019s door', async () => {
    await ada.goto(`${A}/visit?room=${encodeURIComponent(`${BASE}${vault}`)}`);
    const enter = await confirmOnA(ada, 'The Vault', vault);
    await enter('visit-locked-1-a-confirm');
    await ada.getByRole('heading', { name: 'This room is locked' }).waitFor();
    await ada.getByLabel('Access code').fill('open sesame');
    await shot(ada, 'visit-locked-2-b-door');
    await ada.getByRole('button', { name: 'Unlock' }).click();
  });
  await step('locked: Bob gives the code too', async () => {
    await bob.goto(vault);
    if (await bob.getByRole('heading', { name: 'This room is locked' }).count()) {
      await bob.getByLabel('Access code').fill('open sesame');
      await bob.getByRole('button', { name: 'Unlock' }).click();
    }
  });
  await meet(ada, bob, vault, 'locked');

  // --- A members-only Room: Ada asks on A, Bob lets her in on B ------------------------------
  const circle = `${SPACE}/rooms/circle`;
  const circleOnA = `${A}/visit?room=${encodeURIComponent(`${BASE}${circle}`)}`;
  await step('members: Ada asks to join from A', async () => {
    await ada.goto(circleOnA);
    await onVisitPage(ada);
    await shot(ada, 'visit-members-1-a-ask');
    await ada.locator('#remote-room').getByRole('button', { name: 'Ask to join' }).click();
    await ada.locator('#join-standing').getByText('You asked to join.').waitFor();
    await shot(ada, 'visit-members-2-a-asked');
  });
  await step('members: Bob lets her in on B\u2019s members page', async () => {
    const deadline = Date.now() + 20000;
    for (;;) {
      await bob.goto(`${SPACE}/members`);
      if (await bob.getByText('Asking to join from other instances').count()) break;
      check(Date.now() < deadline, 'B\u2019s members page never showed Ada\u2019s request');
      await bob.waitForTimeout(300);
    }
    await shot(bob, 'visit-members-3-b-request');
    await bob.getByRole('button', { name: `Let in ${ADA_ADDRESS}` }).click();
    await bob.getByText(`${ADA_ADDRESS} is a member now.`).waitFor();
    await shot(bob, 'visit-members-4-b-member');
  });
  await step('members: A hears the answer; Ada confirms and enters', async () => {
    const deadline = Date.now() + 20000;
    for (;;) {
      await ada.goto(circleOnA);
      await onVisitPage(ada);
      if (await ada.locator('#remote-room').getByRole('button', { name: 'Join' }).count()) break;
      check(Date.now() < deadline, 'A never heard that B let Ada in');
      await ada.waitForTimeout(300);
    }
    const enter = await confirmOnA(ada, 'Members Circle', circle);
    await enter('visit-members-5-a-confirm');
  });
  await meet(ada, bob, circle, 'members');
});
