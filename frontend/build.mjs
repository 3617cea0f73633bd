// Copies the third-party browser files opsdesk serves into src/opsdesk/web/static/vendor/.
// They come from the npm registry (package-lock.json pins them); nothing is fetched at run time.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "opsdesk", "web", "static", "vendor");
mkdirSync(out, { recursive: true });

const files = [
  ["node_modules/htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["node_modules/@picocss/pico/css/pico.min.css", "pico.min.css"],
  ["node_modules/uplot/dist/uPlot.iife.min.js", "uPlot.iife.min.js"],
  ["node_modules/uplot/dist/uPlot.min.css", "uPlot.min.css"],
  ["node_modules/swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-bundle.js"],
  ["node_modules/swagger-ui-dist/swagger-ui.css", "swagger-ui.css"],
];
for (const [src, dest] of files) {
  copyFileSync(join(here, src), join(out, dest));
  console.log(`vendor/${dest}`);
}
