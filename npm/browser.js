// Browsers (and bundlers that follow the "browser" condition): the engine
// fetched from beside this file and compiled before the import resolves
// (top-level await), so no call needs an init step first.
import init from "./phimask.js";

await init({ module_or_path: new URL("./phimask_bg.wasm", import.meta.url) });

export { callTypes, dataMap, limits, preparePolicy, readRequest, requestWriteKey, Sanitizer, validatePolicy } from "./phimask.js";
