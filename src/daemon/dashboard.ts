import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../util/paths';

/**
 * The dashboard page: plain HTML with inline script and SVG charts (dashboard.html, next to this file
 * in the source tree), served as is. Its Content-Security-Policy allows nothing but this page's own
 * inline code and same-origin requests.
 */
export const DASHBOARD_FILE = path.join(repoRoot, 'src', 'daemon', 'dashboard.html');

export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

let cached: string | undefined;

export function dashboardHtml(): string {
  cached ??= fs.readFileSync(DASHBOARD_FILE, 'utf8');
  return cached;
}
