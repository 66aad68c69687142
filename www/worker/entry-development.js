// The Worker with the development policy (wrangler.toml: env.development).
// Written by the build command (www/dev/check-policy.mjs policies/development.json).
import policy from "../../build/development.policy.js";
import { createWorker } from "./worker.js";

export default createWorker(policy);
