// Node: the engine read from the package's own directory and compiled
// before the first import of it returns.
import { readFileSync } from "node:fs";
import { initSync } from "./phimask.js";

initSync({ module: readFileSync(new URL("./phimask_bg.wasm", import.meta.url)) });

export { callTypes, dataMap, limits, preparePolicy, readRequest, requestWriteKey, Sanitizer, validatePolicy } from "./phimask.js";
