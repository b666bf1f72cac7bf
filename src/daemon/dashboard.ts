import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../util/paths';

/**
 * The dashboard page: plain HTML, CSS and scripts in dashboard/ (next to this file in the source tree),
 * no build step. The page's `<!-- include NAME -->` comments are replaced by the named file of that
 * folder, inline (`<style>` for .css, `<script>` for .js), so that the page stays one document whose
 * Content-Security-Policy allows nothing but its own inline code and same-origin requests, while its
 * code stays in readable modules.
 */
export const DASHBOARD_DIR = path.join(repoRoot, 'src', 'daemon', 'dashboard');
export const DASHBOARD_FILE = path.join(DASHBOARD_DIR, 'page.html');

export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

let cached: string | undefined;

export function dashboardHtml(): string {
  cached ??= assemblePage(DASHBOARD_DIR);
  return cached;
}

/** page.html of `dir` with its include comments replaced by the files they name. */
export function assemblePage(dir: string): string {
  return fs.readFileSync(path.join(dir, 'page.html'), 'utf8').replace(/<!-- include ([a-z-]+\.(?:js|css)) -->/g, (_, name: string) => {
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    const tag = name.endsWith('.css') ? 'style' : 'script';
    // The text ends at the first closing tag of its element, whatever follows: refuse one inside it.
    if (new RegExp(`</${tag}`, 'i').test(text)) throw new Error(`${path.join(dir, name)} contains </${tag}: it cannot be inlined`);
    return `<${tag}>\n${text}</${tag}>`;
  });
}
