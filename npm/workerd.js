// Cloudflare Workers (workerd; wrangler resolves the "workerd" condition):
// wrangler bundles the .wasm import as a compiled WebAssembly.Module, the
// only way a Worker may load wasm (it cannot compile bytes at run time).
import module from "./phimask_bg.wasm";
import { initSync } from "./phimask.js";

initSync({ module });

export { callTypes, dataMap, limits, preparePolicy, readRequest, requestWriteKey, Sanitizer, validatePolicy } from "./phimask.js";
