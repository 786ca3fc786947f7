// Issue 2's browser test: a person signs up, creates a Space and a Room through the pages,
// and visits the main pages on a desktop and a phone; screenshots of each go to CONVENE_SCREENSHOTS.

import { DESKTOP, PHONE, check, context, launch, run, shot, signUp, step } from './lib.mjs';

const person = { email: 'ada@example.org', handle: 'ada', name: 'Ada Okafor' };
const space = { name: 'Garden Club', slug: 'garden-club', description: 'Neighbours who grow things, and swap seeds on Sundays.' };
const room = { name: 'Potting Shed', slug: 'potting-shed', topic: 'Weekly check-in' };

await run('pages', 55000, async () => {
  const browser = await launch();
  const desktop = await context(browser, DESKTOP);
  const page = await desktop.newPage();

  await step('landing page, signed out', async () => {
    await page.goto('/');
    await page.getByRole('heading', { level: 1 }).waitFor();
    check(await page.getByRole('link', { name: 'Create your Passport' }).first().isVisible(), 'no sign-up doorway on the landing page');
    await shot(page, 'desktop-landing-signed-out');
  });

  await step('sign up through the form and the mailed code', async () => {
    await signUp(page, person);
  });

  await step('create a Space through the form', async () => {
    await page.goto('/');
    await page.getByRole('link', { name: 'Create a Space' }).first().click();
    await page.getByLabel('Name', { exact: true }).fill(space.name);
    await page.getByLabel('Short name').fill(space.slug);
    await page.getByLabel('Description').fill(space.description);
    await page.getByLabel('List this Space on the home page').check();
    await page.getByRole('button', { name: 'Create Space' }).click();
    await page.waitForURL(`**/spaces/${space.slug}`);
    await page.getByRole('heading', { level: 1, name: space.name }).waitFor();
  });

  await step('create an open Room through the form', async () => {
    await page.getByRole('link', { name: 'New room' }).first().click();
    await page.getByLabel('Name', { exact: true }).fill(room.name);
    await page.getByLabel('Short name').fill(room.slug);
    await page.getByLabel('Topic').fill(room.topic);
    await page.getByRole('radio', { name: /^Open/ }).check();
    await page.getByRole('button', { name: 'Create room' }).click();
    await page.waitForURL(`**/spaces/${space.slug}/rooms/${room.slug}`);
    await page.getByRole('heading', { level: 1, name: room.name }).waitFor();
  });

  await step('the Room page runs the client: preview, devices, Join', async () => {
    await page.getByRole('heading', { name: 'Ready to join?' }).waitFor();
    await page.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
    check(await page.getByLabel('Camera', { exact: true }).count() === 1, 'no camera choice');
    check(await page.getByLabel('Microphone', { exact: true }).count() >= 1, 'no microphone choice');
    check(await page.getByRole('button', { name: 'Join' }).isEnabled(), 'Join is not enabled');
    await shot(page, 'desktop-room');
  });

  await step('landing lists the Space', async () => {
    await page.goto('/');
    await page.getByRole('link', { name: space.name }).first().waitFor();
    check((await page.textContent('body')).includes(space.description), 'landing does not describe the Space');
    await shot(page, 'desktop-landing');
  });

  await step('Space page shows the Room as a door', async () => {
    await page.getByRole('link', { name: space.name }).first().click();
    await page.waitForURL(`**/spaces/${space.slug}`);
    await page.getByRole('link', { name: room.name }).first().waitFor();
    await shot(page, 'desktop-space');
  });

  await step('members page lists the owner', async () => {
    await page.getByRole('link', { name: 'Members' }).first().click();
    await page.waitForURL(`**/spaces/${space.slug}/members`);
    const text = await page.textContent('main');
    check(text.includes(person.name), 'owner not listed among members');
    check(/owner/i.test(text), 'owner role not shown');
    await shot(page, 'desktop-members');
  });

  await step('account page shows the Passport', async () => {
    await page.getByRole('link', { name: `@${person.handle}` }).click();
    await page.waitForURL('**/me');
    const text = await page.textContent('main');
    check(text.includes(person.email), 'account page does not show the email');
    const names = await page.locator('input').evaluateAll((inputs) => inputs.map((i) => i.value));
    check(text.includes(person.name) || names.includes(person.name), 'account page does not show the display name');
    await shot(page, 'desktop-account');
  });

  await step('the same pages on a phone', async () => {
    const phone = await context(browser, { ...PHONE, storageState: await desktop.storageState() });
    const p = await phone.newPage();
    for (const [name, path] of [
      ['landing', '/'],
      ['space', `/spaces/${space.slug}`],
      ['room', `/spaces/${space.slug}/rooms/${room.slug}`],
      ['members', `/spaces/${space.slug}/members`],
      ['account', '/me'],
    ]) {
      await p.goto(path);
      await p.getByRole('heading', { level: 1 }).first().waitFor();
      if (name === 'room') await p.locator('#room-app.is-enhanced .preview.has-video').waitFor({ timeout: 10000 });
      // Nothing may stick out sideways on a small screen.
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 1, `${name} page is ${overflow}px wider than the phone`);
      await shot(p, `phone-${name}`);
    }
    const signedOut = await context(browser, PHONE);
    const s = await signedOut.newPage();
    await s.goto('/signup');
    await shot(s, 'phone-signup');
  });
});
