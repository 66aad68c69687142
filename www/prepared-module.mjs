// The module a Worker entry imports its policy from: the environment's
// name and the policy prepared by the engine (`preparePolicy`), which the
// Worker's engine (built without the validator) loads with
// `Sanitizer.fromPrepared`. Node only (build time).
import { preparePolicy } from "./node.mjs";

/**
 * The module's text for a policy (JSON text); throws the engine's Error
 * (code `invalid_policy`, with `errors`) for an invalid one.
 */
export function preparedModule(text, source) {
  const prepared = Buffer.from(preparePolicy(text)).toString("base64");
  const { environment } = JSON.parse(text);
  return `// Prepared from ${source} by www/check-policy.mjs; do not edit.\n` +
    `export default { environment: ${JSON.stringify(environment)}, prepared: "${prepared}" };\n`;
}
