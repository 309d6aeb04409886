/**
 * Notebooks as a reader sees them: each notebook's committed outputs rendered to HTML by nbconvert and opened
 * in headless Chromium (Debian's `chromium`, driven by playwright-core, which downloads no browser), with
 * every network request refused, so a figure that needs the internet shows up as not drawn. Checks what a
 * person would notice: an error output, an image that did not load or shows no data (no coloured pixel: an
 * empty frame), a plotly plot with no trace drawn, anything wider than the page, and a machine's absolute path.
 * Used by test/browser.test.ts and `npm run notebooks:screenshots` (full-page screenshots to look at).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { chromium, type Browser } from "playwright-core";

/** The Chromium to drive: $CHROMIUM_PATH, else Debian's or Ubuntu's; null when none is installed. */
export function chromiumPath(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter((x): x is string => Boolean(x));
  return candidates.find((p) => fs.existsSync(p)) ?? null;
}

/** nbconvert's HTML of a notebook's stored outputs (nothing is executed), written into outDir. */
export function notebookHtml(notebook: string, outDir: string): string {
  fs.mkdirSync(outDir, { recursive: true });
  const r = spawnSync("jupyter", ["nbconvert", "--to", "html", "--output-dir", outDir, notebook], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`jupyter nbconvert --to html ${notebook} failed (exit ${r.status}):\n${r.stderr}`);
  const file = path.join(outDir, path.basename(notebook).replace(/\.ipynb$/, ".html"));
  if (!fs.existsSync(file)) throw new Error(`nbconvert wrote no ${file}`);
  return file;
}

export interface NotebookPageReport {
  notebook: string;
  problems: string[];
  images: number;
  plotlyPlots: number;
  tables: number;
  blockedRequests: string[];
  screenshot: string | null;
}

const ABSOLUTE_PATH = /(?:^|[\s"'(=])(\/(?:work|home|root|tmp|Users|mnt)\/[^\s"')]*)/;

export async function inspectNotebooks(notebooks: readonly string[], opts: { htmlDir: string; screenshotDir?: string; width?: number }): Promise<NotebookPageReport[]> {
  const exe = chromiumPath();
  if (!exe) throw new Error("no Chromium found (install Debian's `chromium`, or set CHROMIUM_PATH)");
  const browser: Browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox", "--disable-gpu"] });
  const reports: NotebookPageReport[] = [];
  try {
    for (const nb of notebooks) {
      const html = notebookHtml(nb, opts.htmlDir);
      const context = await browser.newContext({ viewport: { width: opts.width ?? 1280, height: 900 } });
      const blocked: string[] = [];
      // Offline: local files and inline data only, as on a machine without internet.
      await context.route("**/*", (route) => {
        const url = route.request().url();
        if (url.startsWith("file:") || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
        blocked.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(String(e.message).slice(0, 200)));
      await page.goto(`file://${html}`, { waitUntil: "load" });
      await page.waitForTimeout(1500); // plotly draws after load
      const found = await page.evaluate(() => {
        const problems: string[] = [];
        const stderr = document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]');
        stderr.forEach((e) => problems.push(`an error or stderr output: ${(e.textContent ?? "").trim().slice(0, 160)}`));
        const images = Array.from(document.images).filter((img) => img.closest(".jp-OutputArea-output, .output_area"));
        images.forEach((img, i) => {
          if (!img.complete || img.naturalWidth === 0) {
            problems.push(`image ${i + 1} did not load`);
            return;
          }
          // An empty frame has axes and text only (grey, black, white): count strongly coloured pixels.
          const c = document.createElement("canvas");
          c.width = img.naturalWidth;
          c.height = img.naturalHeight;
          const g = c.getContext("2d")!;
          g.drawImage(img, 0, 0);
          const d = g.getImageData(0, 0, c.width, c.height).data;
          let coloured = 0;
          for (let p = 0; p < d.length; p += 16) {
            const [r, gg, b] = [d[p]!, d[p + 1]!, d[p + 2]!];
            if (Math.max(r, gg, b) - Math.min(r, gg, b) > 60) coloured++;
          }
          if (coloured / (d.length / 16) < 0.0005) problems.push(`image ${i + 1} (${img.naturalWidth}x${img.naturalHeight}) shows no data: no coloured mark`);
          const shown = img.getBoundingClientRect().width;
          if (shown < 50) problems.push(`image ${i + 1} is drawn ${shown.toFixed(0)} px wide`);
        });
        const plots = Array.from(document.querySelectorAll('div[id^="plotly-"]'));
        plots.forEach((p) => {
          if (!p.querySelector(".main-svg") || p.querySelectorAll(".trace").length === 0) problems.push(`plotly plot ${p.id} was not drawn`);
        });
        const overflow = document.documentElement.scrollWidth - window.innerWidth;
        if (overflow > 2) {
          const wide = Array.from(document.querySelectorAll(".jp-OutputArea-output *, .jp-Cell *")).find((e) => e.getBoundingClientRect().right > window.innerWidth + 2);
          problems.push(`the page is ${overflow} px wider than the window${wide ? ` (e.g. <${wide.tagName.toLowerCase()}> "${(wide.textContent ?? "").trim().slice(0, 60)}")` : ""}`);
        }
        return { problems, images: images.length, plots: plots.length, tables: document.querySelectorAll(".jp-OutputArea-output table").length, text: document.body.innerText };
      });
      const m = found.text.match(ABSOLUTE_PATH);
      if (m) found.problems.push(`an absolute path of the machine that ran it: ${m[1]}`);
      for (const e of pageErrors) found.problems.push(`a script error in the page: ${e}`);
      let screenshot: string | null = null;
      if (opts.screenshotDir) {
        fs.mkdirSync(opts.screenshotDir, { recursive: true });
        screenshot = path.join(opts.screenshotDir, path.basename(nb).replace(/\.ipynb$/, ".png"));
        await page.screenshot({ path: screenshot, fullPage: true });
      }
      reports.push({ notebook: nb, problems: found.problems, images: found.images, plotlyPlots: found.plots, tables: found.tables, blockedRequests: blocked, screenshot });
      await context.close();
    }
  } finally {
    await browser.close();
  }
  return reports;
}
