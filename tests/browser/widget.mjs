// Opens a localized demo page through edgeseo in headless Chromium, uses the chat widget with the
// keyboard only, and prints what a buyer saw as JSON for tests/widget.rs to check.
// Usage: node widget.mjs <base-url> <page-path> <message>
import { chromium } from "playwright-core";

const [base, path, message] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const seen = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(10000);
  await page.goto(base + path);
  const launcher = page.locator("#edgeseo-chat .l");
  seen.launcher = await launcher.textContent();
  seen.launcherExpanded = await launcher.getAttribute("aria-expanded");

  // Keyboard only: focus the launcher, Enter opens, focus lands in the message field.
  await launcher.focus();
  await page.keyboard.press("Enter");
  await page.locator("#edgeseo-chat .p").waitFor({ state: "visible" });
  const focused = () => page.evaluate(() => {
    const root = document.getElementById("edgeseo-chat").shadowRoot;
    const el = root.activeElement;
    return el ? el.tagName.toLowerCase() + (el.className ? "." + el.className : "") : null;
  });
  seen.focusAfterOpen = await focused();
  seen.title = await page.locator("#edgeseo-chat h2").textContent();
  seen.placeholder = await page.locator("#edgeseo-chat input").getAttribute("placeholder");

  await page.keyboard.type(message);
  await page.keyboard.press("Enter");
  const reply = page.locator("#edgeseo-chat .m.b[data-intent]:not([aria-busy])").last();
  await reply.waitFor();
  seen.answer = await reply.textContent();
  seen.links = await reply.evaluate((el) =>
    Array.from(el.querySelectorAll("a")).map((a) => ({ href: a.getAttribute("href"), text: a.textContent })));
  seen.lang = await reply.getAttribute("lang");
  seen.intent = await reply.getAttribute("data-intent");
  seen.question = await page.locator("#edgeseo-chat .m.u").last().textContent();

  await page.keyboard.press("Escape");
  seen.hiddenAfterEscape = await page.locator("#edgeseo-chat .p").isHidden();
  seen.focusAfterEscape = await focused();

  // A phone: the open panel fits the screen.
  await page.setViewportSize({ width: 360, height: 640 });
  await launcher.click();
  seen.mobilePanel = await page.locator("#edgeseo-chat .p").boundingBox();
  seen.mobileLauncher = await launcher.boundingBox();

  // Phones: the launcher docks with the language switcher at the top and covers no price or
  // form field of the page wherever the page is scrolled (boxes in page coordinates).
  seen.phones = [];
  for (const width of [360, 390, 414]) {
    await page.setViewportSize({ width, height: 740 });
    await page.reload();
    seen.phones.push(await page.evaluate(() => {
      const box = (el) => {
        const r = el.getBoundingClientRect();
        return { x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height };
      };
      const host = document.getElementById("edgeseo-chat");
      const launcher = box(host.shadowRoot.querySelector(".l"));
      const overlaps = (b) => !(b.x >= launcher.x + launcher.width || launcher.x >= b.x + b.width ||
        b.y >= launcher.y + launcher.height || launcher.y >= b.y + b.height);
      const guarded = [...document.querySelectorAll("span[data-sku], form input, form select, form textarea, form button")]
        .filter((el) => !host.contains(el));
      return {
        width: innerWidth,
        inSwitcher: !!host.closest("nav.edgeseo-lang"),
        launcher,
        guarded: guarded.length,
        covered: guarded.filter((el) => overlaps(box(el))).map((el) => el.outerHTML.slice(0, 80)),
        fixed: getComputedStyle(host.shadowRoot.querySelector(".l")).position,
      };
    }));
  }

  // The language switcher is a real link; following it remembers the choice.
  const vietnamese = page.locator('nav.edgeseo-lang a[hreflang="vi-VN"]');
  if ((await vietnamese.count()) > 0) {
    await page.setViewportSize({ width: 1280, height: 800 });
    await Promise.all([page.waitForURL(/\/vi\//), vietnamese.click()]);
    seen.switchedPath = new URL(page.url()).pathname;
    seen.switchedLang = await page.getAttribute("html", "lang");
    const cookie = (await page.context().cookies()).find((c) => c.name === "edgeseo_locale");
    seen.localeCookie = cookie ? cookie.value : null;
  }

  // A buyer whose browser prefers Indonesian, on an English page: the banner offers the
  // Indonesian version above the page (pushing it down, covering nothing) and "no thanks" is
  // remembered.
  if (path.startsWith("/id/")) {
    const context = await browser.newContext({ locale: "id-ID", viewport: { width: 390, height: 740 } });
    const english = await context.newPage();
    english.setDefaultTimeout(10000);
    await english.goto(base + path.slice(3));
    const banner = english.locator(".edgeseo-banner");
    await banner.waitFor();
    seen.banner = await english.evaluate(() => {
      const bar = document.querySelector(".edgeseo-banner");
      const r = bar.getBoundingClientRect();
      const next = bar.nextElementSibling.getBoundingClientRect();
      return {
        position: getComputedStyle(bar).position,
        firstInBody: document.body.firstElementChild === bar,
        lang: bar.getAttribute("lang"),
        bottom: r.bottom,
        nextTop: next.top,
        offer: bar.querySelector("a").getAttribute("href"),
      };
    });
    await banner.locator("button").click();
    await english.reload();
    await english.waitForLoadState("networkidle");
    seen.bannerAfterDismiss = await banner.count();
    const choice = (await context.cookies()).find((c) => c.name === "edgeseo_locale");
    seen.dismissCookie = choice ? choice.value : null;
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
