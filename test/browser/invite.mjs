// An invited person without an app: opens the invitation page in
// chromium, picks a username and password there, then logs in to the web
// client with them and finds the inviter among the contacts (XEP-0379).
// Screenshots of the page go to SHOTDIR/invite.png.
//
// Usage: node invite.mjs BASE_URL INVITE_PATH INVITER SHOTDIR
import { chromium } from 'playwright-core';

const [base, invitePath, inviter, shotDir] = process.argv.slice(2);
const timeout = 20000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
});
try {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 1400 },
    userAgent: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36' });
  const page = await ctx.newPage();
  page.on('pageerror', e => console.error('page error: ' + e.message));
  await page.goto(base + invitePath, { timeout });
  await page.getByText('invites you to chat').waitFor({ timeout });
  await page.getByText('Conversations').first().waitFor({ timeout });
  await page.screenshot({ path: shotDir + '/invite.png', fullPage: true });
  await page.fill('#username', 'juliet');
  await page.fill('#password', 'balcony-2024');
  await page.fill('#password2', 'balcony-2024');
  await page.click('button[type=submit]');
  await page.getByText('Your account is ready').waitFor({ timeout });
  await page.getByText('juliet@').first().waitFor({ timeout });

  // Then chat in the browser with the new account: the inviter is a contact.
  await page.click('a[href="/chat/"]');
  await page.fill('#converse-login-jid', 'juliet', { timeout });
  await page.fill('#converse-login-password', 'balcony-2024');
  await page.click('form button[type=submit]');
  await page.locator('a.open-chat', { hasText: inviter }).first().waitFor({ timeout });
  console.log('ok');
} catch (e) {
  console.error('FAILED: ' + e.message);
  process.exitCode = 1;
} finally {
  await browser.close();
}
