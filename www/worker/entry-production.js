// The Worker with the production policy (wrangler.toml: env.production).
// Written by the build command (www/dev/check-policy.mjs policies/production.json).
import policy from "../../build/production.policy.js";
import { createWorker } from "./worker.js";

export default createWorker(policy);
