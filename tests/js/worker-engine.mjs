// The edge Worker's engine (pkg-worker/: no validator, prepared policies
// only), loaded in Node so the shared vectors can run against it too.
import { readFileSync } from "node:fs";
import * as edge from "../../pkg-worker/phimask.js";

edge.initSync({ module: readFileSync(new URL("../../pkg-worker/phimask_bg.wasm", import.meta.url)) });

export { edge };
