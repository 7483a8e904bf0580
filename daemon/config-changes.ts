/**
 * What a config read again at SIGHUP changes that the running daemon does not take: SIGHUP applies
 * only the HTTP API's tokens and certificate, so any other change (a sink's kind, a source's tables,
 * a batch size) needs a restart, and the log names it instead of staying silent. Key paths only, never
 * values: a changed password must not reach the log. A sink's secret given by file (password_file,
 * api_key_file) is not named: the sink reads its file again when it connects next (config/secret-files.ts).
 */

/** Key paths of the settings that SIGHUP applies (the tokens, however given; the certificate is compared apart). */
const APPLIED_AT_RELOAD = /^http\.(admin_token|read_token|tls)(_file)?(\.|$)/;

/** At most this many paths are named; the rest are counted. */
const MAX_NAMED = 10;

export function settingsNeedingRestart(running: unknown, reread: unknown): string[] {
  const changed: string[] = [];
  walk(running, reread, "", changed);
  const named = changed.filter((path) => !APPLIED_AT_RELOAD.test(path) && !isSinkSecretFromFile(path, reread));
  return named.length <= MAX_NAMED ? named : [...named.slice(0, MAX_NAMED), `and ${named.length - MAX_NAMED} more`];
}

const SINK_KEY = /^sinks\[("(?:[^"\\]|\\.)*")\]\.(\w+)$/;

/** `sinks["ch"].password` of a sink that reads its password from a file: taken at the sink's next connection. */
function isSinkSecretFromFile(path: string, config: unknown): boolean {
  const match = SINK_KEY.exec(path);
  if (!match || !isRecord(config) || !Array.isArray(config["sinks"])) return false;
  const name = JSON.parse(match[1]!) as string;
  const sink = (config["sinks"] as unknown[]).find((item) => isRecord(item) && item["name"] === name);
  const files = isRecord(sink) ? sink["secret_files"] : undefined;
  return isRecord(files) && typeof files[match[2]!] === "string";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A list's elements that have a name (sources, sinks) are matched by it, so reordering is no change and the path says which one. */
function byName(list: readonly unknown[]): Map<string, unknown> | null {
  const names = new Map<string, unknown>();
  for (const item of list) {
    if (!isRecord(item) || typeof item["name"] !== "string" || names.has(item["name"])) return null;
    names.set(item["name"], item);
  }
  return names;
}

function walk(before: unknown, after: unknown, path: string, changed: string[]): void {
  if (Array.isArray(before) && Array.isArray(after)) {
    const old = byName(before);
    const now = byName(after);
    if (old && now) {
      for (const [name, item] of old) {
        const itemPath = `${path}[${JSON.stringify(name)}]`;
        if (!now.has(name)) changed.push(`${itemPath} (removed)`);
        else walk(item, now.get(name), itemPath, changed);
      }
      for (const name of now.keys()) if (!old.has(name)) changed.push(`${path}[${JSON.stringify(name)}] (added)`);
      return;
    }
  }
  if (isRecord(before) && isRecord(after)) {
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) walk(before[key], after[key], path === "" ? key : `${path}.${key}`, changed);
    return;
  }
  if (JSON.stringify(before) !== JSON.stringify(after)) changed.push(path);
}
