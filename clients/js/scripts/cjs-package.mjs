// dist/cjs holds CommonJS: tell Node so, inside a package whose "type" is "module".
import { writeFileSync } from "node:fs";
writeFileSync(new URL("../dist/cjs/package.json", import.meta.url), '{ "type": "commonjs" }\n');
