// The module a Worker entry imports its policy from: the environment's
// name, the policy prepared by the engine (`preparePolicy`), which the
// Worker's engine (built without the validator) loads with
// `Sanitizer.fromPrepared`, and whether the policy honours Global Privacy
// Control (the Worker's /.well-known/gpc.json says so). Node only (build
// time).
import { preparePolicy } from "./node.mjs";

/**
 * The module's text for a policy (JSON text); throws the engine's Error
 * (code `invalid_policy`, with `errors`) for an invalid one.
 */
export function preparedModule(text, source) {
  return preparedPolicy(text, source).module;
}

/**
 * The module's text and the prepared policy's SHA-256 (its last 32 bytes:
 * what the Worker's GET /health reports, so an operator can tell which
 * policy a deployment runs).
 */
export function preparedPolicy(text, source) {
  const bytes = preparePolicy(text);
  const sha256 = Buffer.from(bytes.subarray(-32)).toString("hex");
  return { module: moduleText(Buffer.from(bytes).toString("base64"), text, source), sha256 };
}

function moduleText(prepared, text, source) {
  const policy = JSON.parse(text);
  const { environment } = policy;
  return `// Prepared from ${source} by www/dev/check-policy.mjs; do not edit.\n` +
    `export default { environment: ${JSON.stringify(environment)}, prepared: "${prepared}", gpc: ${honoursGpc(policy)} };\n`;
}

/**
 * Whether a (validated) policy honours Global Privacy Control: a server-side
 * destination needs a purpose its consent section has GPC deny, so a
 * visitor's GPC signal changes what is sent.
 */
export function honoursGpc(policy) {
  const gpc = Array.isArray(policy?.consent?.gpc) ? policy.consent.gpc : [];
  return Object.values(policy?.destinations ?? {}).some(
    (d) => d?.connection === "server-side" && Array.isArray(d.consent) && d.consent.some((p) => gpc.includes(p)),
  );
}
