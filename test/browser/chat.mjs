// Two people chat in Parley's web client (Converse.js) in Debian's
// chromium, driven by playwright-core: alice and bob log in through the
// page, alice writes to bob, bob sees it; then bob opens the page again
// with an empty browser store and finds the message in the history (MAM).
// A screenshot of the chat is saved.
//
// Usage: node chat.mjs BASE_URL SCREENSHOT  (users alice/alice-pw and
// bob/bob-pw with each other in their rosters; env CHROMIUM overrides
// /usr/bin/chromium). Prints "ok" on success; exits non-zero with the
// reason otherwise.
import { chromium } from 'playwright-core';

const [base, shot] = process.argv.slice(2);
const timeout = 20000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
const external = [];

async function login(user, password) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  // The page's CSP blocks other origins (Converse's sponsor logos): no
  // response may come from anywhere but this server.
  page.on('response', r => { if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) external.push(r.url()); });
  page.on('pageerror', e => console.error(`[${user}] page error: ${e.message}`));
  await page.goto(base + '/', { timeout });
  await page.fill('#converse-login-jid', user, { timeout });
  await page.fill('#converse-login-password', password);
  await page.click('form button[type=submit]');
  await page.waitForSelector('converse-roster, .roster-contacts, #converse-roster', { timeout });
  return page;
}

async function openChat(page, name) {
  const contact = page.locator('a.open-chat', { hasText: name }).first();
  await contact.waitFor({ timeout });
  await contact.click();
  await page.waitForSelector('textarea.chat-textarea', { timeout });
}

try {
  const alice = await login('alice', 'alice-pw');
  const bob = await login('bob', 'bob-pw');
  const text = 'Hello Bob, this is Alice from the browser ' + Date.now();
  await openChat(alice, 'bob');
  await alice.fill('textarea.chat-textarea', text);
  await alice.press('textarea.chat-textarea', 'Enter');
  await alice.locator('.chat-msg__text', { hasText: text }).first().waitFor({ timeout });

  await openChat(bob, 'alice');
  await bob.locator('.chat-msg__text', { hasText: text }).first().waitFor({ timeout });
  await bob.fill('textarea.chat-textarea', 'Hi Alice! Got it.');
  await bob.press('textarea.chat-textarea', 'Enter');
  await alice.locator('.chat-msg__text', { hasText: 'Hi Alice! Got it.' }).first().waitFor({ timeout });
  await alice.screenshot({ path: shot });

  // A fresh browser store: the history comes from the server archive.
  await bob.context().close();
  const bob2 = await login('bob', 'bob-pw');
  await openChat(bob2, 'alice');
  await bob2.locator('.chat-msg__text', { hasText: text }).first().waitFor({ timeout });
  await bob2.locator('.chat-msg__text', { hasText: 'Hi Alice! Got it.' }).first().waitFor({ timeout });
  if (external.length > 0) {
    throw new Error('the page loaded resources from elsewhere: ' + [...new Set(external)].join(' '));
  }
  console.log('ok');
} catch (e) {
  console.error('FAILED: ' + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
