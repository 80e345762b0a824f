// Group chat in Parley's web client (Converse.js) in Debian's chromium,
// driven by playwright-core: alice creates a room through the "Add
// groupchat" dialog and writes in it, bob joins it and finds her message
// in the history, answers, alice sees the answer; bob opens the page again
// with an empty browser store, joins again and finds both messages (the
// room's archive). No stanza the page sends goes to another server
// (Converse's default room search service is api@search.jabber.network;
// the server configures its own room service instead).
//
// Usage: node muc.mjs BASE_URL ROOM_JID  (users alice/alice-pw and
// bob/bob-pw; env CHROMIUM overrides /usr/bin/chromium). Prints "ok" on
// success; exits non-zero with the reason otherwise.
import { chromium } from 'playwright-core';

const [base, room] = process.argv.slice(2);
const domain = room.split('@')[1].replace(/^conference\./, '');
const timeout = 20000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
const foreign = [];

async function login(user, password) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  page.on('pageerror', e => console.error(`[${user}] page error: ${e.message}`));
  page.on('websocket', ws => ws.on('framesent', f => {
    if (process.env.DEBUG_FRAMES) console.log('SENT', String(f.payload).slice(0, 200));
    for (const m of String(f.payload).matchAll(/\sto=["']([^"']+)["']/g)) {
      const host = m[1].replace(/^[^@/]*@/, '').replace(/\/.*$/, '');
      if (host !== domain && !host.endsWith('.' + domain)) foreign.push(`[${user}] ${f.payload}`);
    }
  }));
  await page.goto(base + '/', { timeout });
  await page.fill('#converse-login-jid', user, { timeout });
  await page.fill('#converse-login-password', password);
  await page.click('form button[type=submit]');
  await page.waitForSelector('converse-roster', { timeout });
  return page;
}

async function join(page, nick) {
  await page.click('converse-rooms-list converse-dropdown button.dropdown-toggle', { timeout });
  await page.click('a.show-add-muc-modal', { timeout });
  // typed as a person does (the room search completes while typing)
  await page.locator('input[name=chatroom]').pressSequentially(room, { timeout });
  const n = page.locator('input[name=nickname]');
  if (await n.count()) await n.fill(nick);
  await page.getByRole('button', { name: 'Join' }).click();
  await page.waitForSelector('converse-muc textarea.chat-textarea', { timeout });
}

async function say(page, text) {
  await page.fill('converse-muc textarea.chat-textarea', text);
  await page.press('converse-muc textarea.chat-textarea', 'Enter');
}

const seen = (page, text) => page.locator('converse-muc .chat-msg__text', { hasText: text }).first().waitFor({ timeout });

let step = 'alice logs in';
try {
  const alice = await login('alice', 'alice-pw');
  step = 'alice creates the room';
  await join(alice, 'alice');
  const first = 'Welcome to the room ' + Date.now();
  await say(alice, first);
  await seen(alice, first);
  step = 'bob joins and sees the history';
  let bob = await login('bob', 'bob-pw');
  await join(bob, 'bob');
  await seen(bob, first);
  step = 'bob answers, alice sees it';
  await say(bob, 'Hello everyone');
  await seen(alice, 'Hello everyone');
  step = 'bob reopens the page and finds the history';
  await bob.context().close();
  bob = await login('bob', 'bob-pw');
  if (await bob.locator('converse-muc textarea.chat-textarea').count() === 0) await join(bob, 'bob');
  await seen(bob, first);
  await seen(bob, 'Hello everyone');
  if (foreign.length > 0) throw new Error('stanzas to other servers:\n' + foreign.join('\n'));
  console.log('ok');
} catch (e) {
  console.error(`FAILED (${step}): ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
