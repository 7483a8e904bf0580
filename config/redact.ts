/**
 * Keeps the config's secrets (passwords, tokens, API keys) out of everything Sluice prints or
 * answers. The values are remembered once per thread when a config is read; log lines, command
 * output, errors and HTTP answers pass through `redact`, which replaces each of them (and the
 * forms a driver may print: JSON-escaped, URL-encoded, base64 in a Basic auth header) by
 * REDACTED. A driver that prints its settings on a failed connection is covered that way too.
 */
import { SECRET_KEYS } from "./secret-keys.ts";

export const REDACTED = "[redacted]";

/**
 * Shorter values are too likely to be ordinary words of a log line (a password "sluice" would
 * blank out every "sluice"); they are weak anyway. Tokens of the HTTP API are at least 16.
 */
export const MIN_REDACTED_LENGTH = 8;

const secrets = new Set<string>();
let pattern: RegExp | null = null;

/** Every secret value of a config (parsed or raw): strings or numbers at keys in SECRET_KEYS, and user:password pairs. */
export function secretValues(config: unknown): string[] {
  const found: string[] = [];
  const walk = (node: unknown) => {
    if (Array.isArray(node)) {
      node.forEach(walk);
      return;
    }
    if (node === null || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    for (const [key, value] of Object.entries(record)) {
      if ((SECRET_KEYS as readonly string[]).includes(key) && (typeof value === "string" || typeof value === "number")) found.push(String(value));
      else walk(value);
    }
    const user = record["user"] ?? record["username"];
    const password = record["password"];
    if (typeof user === "string" && (typeof password === "string" || typeof password === "number")) {
      found.push(Buffer.from(`${user}:${String(password)}`).toString("base64"));
    }
  };
  walk(config);
  return found;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Remembers secret values for `redact` in this thread (a worker thread remembers its own). */
export function rememberSecrets(values: Iterable<string>): void {
  const before = secrets.size;
  for (const value of values) {
    if (value.length < MIN_REDACTED_LENGTH) continue;
    secrets.add(value);
    secrets.add(JSON.stringify(value).slice(1, -1));
    secrets.add(encodeURIComponent(value));
    secrets.add(Buffer.from(value).toString("base64"));
  }
  if (secrets.size === before) return;
  // Longest first, so a secret containing another is replaced whole.
  const alternatives = [...secrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
  pattern = new RegExp(alternatives.join("|"), "g");
}

/** The text with every remembered secret replaced by REDACTED. */
export function redact(text: string): string {
  return pattern === null ? text : text.replace(pattern, REDACTED);
}

/** Whether the key names a secret (its value must never be shown, e.g. in a config error). */
export function isSecretKey(key: PropertyKey | undefined): boolean {
  return typeof key === "string" && (SECRET_KEYS as readonly string[]).includes(key);
}
