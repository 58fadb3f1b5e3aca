// Copies NHS.UK frontend's built CSS, JS and images from node_modules into static/vendor/nhsuk,
// so pages load them from our own origin (no CDN; a strict Content-Security-Policy).
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const source = "node_modules/nhsuk-frontend/dist/nhsuk";
const target = "static/vendor/nhsuk";
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });

const css = readFileSync(`${source}/nhsuk-frontend.min.css`, "utf8")
  // Images are addressed from the site root upstream; ours sit beside the stylesheet.
  .replaceAll("url(/assets/", "url(assets/")
  // Frutiger is served only from an NHS CDN that the CSP (and an offline machine) cannot reach;
  // the stylesheet already falls back to Arial.
  .replace(/@font-face\{[^}]*assets\.nhs\.uk[^}]*\}/g, "");
writeFileSync(`${target}/nhsuk-frontend.min.css`, css);
cpSync(`${source}/nhsuk-frontend.min.js`, `${target}/nhsuk-frontend.min.js`);
cpSync(`${source}/assets`, `${target}/assets`, { recursive: true });
console.log(`copied NHS.UK frontend into ${target}`);
