// The Worker with the production policy (wrangler.toml: env.production).
import policy from "../policies/production.json";
import { createWorker } from "./worker.js";

export default createWorker(policy);
