/**
 * Headless Chromium for the dashboard's browser test and its screenshot CLI: Debian's `chromium`
 * package driven by `playwright-core` (a dev dependency; Playwright's own browser download is not
 * used). Not loaded by the API server.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Where Debian's `chromium` package installs the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a quiet headless run in a container: no sandbox (root), no GPU, no background traffic. */
export const CHROMIUM_ARGS: readonly string[] = Object.freeze([
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

/**
 * Launch headless Chromium from {@link CHROMIUM_PATH}.
 *
 * @throws Error saying how to install it when the binary is missing.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install Debian's package (apt-get install -y --no-install-recommends chromium); .ci/run does this in CI`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: [...CHROMIUM_ARGS] });
}

/** `sessionStorage` key under which the page keeps the visitor's API key (see public/dashboard.js). */
export const DASHBOARD_KEY_STORAGE = 'scenecache.apiKey';

/**
 * Wait until the dashboard has completed a refresh in which every endpoint answered, after
 * `afterRefreshes` such refreshes (the page counts them in `data-refreshes` of `last-updated`).
 *
 * @param timeoutMs - give up after this long (ms). @defaultValue 20000
 * @returns the number of complete refreshes so far.
 */
export async function waitForDashboardRefresh(page: Page, afterRefreshes = 0, timeoutMs = 20_000): Promise<number> {
  // A function, not a string: the page's CSP (no 'unsafe-eval') stops Playwright from evaluating
  // string predicates. Typed structurally: this package is compiled without the DOM library.
  const handle = await page.waitForFunction(
    (after: number) => {
      const { document } = globalThis as unknown as { document: { querySelector(selector: string): { getAttribute(name: string): string | null } | null } };
      const el = document.querySelector('[data-testid="last-updated"]');
      const n = Number(el?.getAttribute('data-refreshes') ?? 0);
      return el?.getAttribute('data-at') != null && n > after ? n : false;
    },
    afterRefreshes,
    { timeout: timeoutMs },
  );
  return Number(await handle.jsonValue());
}

/** Options of {@link screenshotDashboard}. */
export interface DashboardScreenshotOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** PNG file to write (its folder is created). */
  out: string;
  /** An API key for an API that enforces keys (an admin key shows every panel). */
  apiKey?: string | undefined;
  /** Viewport width (px); the screenshot is the full page height. @defaultValue 1280 */
  width?: number;
}

/**
 * Load the dashboard of a running API in headless Chromium, wait for a refresh in which every
 * endpoint answered, and save a full-page screenshot.
 *
 * @throws Error when Chromium is missing, when the API asks for a key and none (or a refused one)
 *   was given, or when the figures do not load within 20 s (the page's error banner is quoted).
 */
export async function screenshotDashboard(options: DashboardScreenshotOptions): Promise<void> {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: options.width ?? 1280, height: 900 } });
    if (options.apiKey !== undefined && options.apiKey !== '') {
      // As a visitor's key would be kept by the page's key form.
      await page.addInitScript({ content: `sessionStorage.setItem(${JSON.stringify(DASHBOARD_KEY_STORAGE)}, ${JSON.stringify(options.apiKey)});` });
    }
    await page.goto(`${options.baseUrl.replace(/\/+$/, '')}/`);
    // Loaded (a refresh in which every endpoint answered), or asking for a key, or failing.
    const deadline = Date.now() + 20_000;
    while ((await page.getByTestId('last-updated').getAttribute('data-at')) === null) {
      if (await page.getByTestId('auth').isVisible()) throw new Error('the API requires a key (API_KEY for the CLI; an admin key shows every panel)');
      if (Date.now() > deadline) {
        const banner = await page.getByTestId('error').textContent();
        throw new Error(`the dashboard did not load its figures within 20 s${banner !== null && banner !== '' ? `: ${banner}` : ''}`);
      }
      await sleep(100);
    }
    mkdirSync(dirname(options.out), { recursive: true });
    await page.screenshot({ path: options.out, fullPage: true });
  } finally {
    await browser.close();
  }
}
