// Encryption of queued bodies that still hold PHI (destinations under a
// BAA): AES-256-GCM with WebCrypto, a fresh 96-bit IV per message, and the
// destination's name as additional data, so a sealed body opens only for
// the destination it was made for. The key is the QUEUE_ENCRYPTION_KEY
// secret: 32 bytes as 64 hex digits or as base64.

const enc = new TextEncoder();

/**
 * The key of QUEUE_ENCRYPTION_KEY, or null when it is not set. Throws
 * `invalid_queue_key` when it is set but not 32 bytes (never quoting it).
 */
export function sealKey(secret) {
  if (secret === undefined || secret === null || secret === "") return null;
  const text = String(secret).trim();
  let bytes = null;
  if (/^[0-9a-fA-F]{64}$/.test(text)) {
    bytes = Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
  } else if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) {
    bytes = Uint8Array.from(atob(text.length === 43 ? `${text}=` : text), (c) => c.charCodeAt(0));
  }
  if (bytes?.length !== 32) {
    throw Object.assign(new Error("QUEUE_ENCRYPTION_KEY must be 32 bytes, as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)"), { code: "invalid_queue_key" });
  }
  return crypto.subtle.importKey("raw", bytes, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** `bytes` sealed for `destination`: { iv, body } (ciphertext with its tag). */
export async function seal(key, destination, bytes) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const body = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode(destination) }, await key, bytes));
  return { iv, body };
}

/** The bytes of a sealed body; throws when it does not open (another key, altered, another destination). */
export async function open(key, destination, iv, body) {
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode(destination) }, await key, body));
}
