// The Worker with the development policy (wrangler.toml: env.development).
import policy from "../policies/development.json";
import { createWorker } from "./worker.js";

export default createWorker(policy);
