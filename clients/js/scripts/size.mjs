// The core's size budget: what a browser app pays for `import { Pulseboard } from "pulseboard"`,
// bundled and minified by esbuild, then gzipped. Fails past the budget.
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const BUDGET = 8 * 1024;
const entries = { core: "dist/esm/index.js", publisher: "dist/esm/publisher.js" };
let over = false;
for (const [name, entry] of Object.entries(entries)) {
  const result = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, platform: "browser" });
  const code = result.outputFiles[0].contents;
  const gzipped = gzipSync(code, { level: 9 }).length;
  console.log(`${name}: ${code.length} B minified, ${gzipped} B min+gzip${name === "core" ? ` (budget ${BUDGET} B)` : ""}`);
  if (name === "core" && gzipped > BUDGET) over = true;
}
if (over) {
  console.error("the core is over its size budget");
  process.exit(1);
}
