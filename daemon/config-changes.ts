/**
 * What a config read again at SIGHUP changes that the running daemon does not take: SIGHUP applies
 * only the HTTP API's tokens and certificate, so any other change (a sink's kind, a source's tables,
 * a batch size) needs a restart, and the log names it instead of staying silent. Key paths only, never
 * values: a changed password must not reach the log. A secret given by file (a sink's or a source's
 * password_file or api_key_file, Kafka's topics.sasl.password_file) is not named: its file is read again
 * when the sink or source connects next, and at each Kafka authentication (config/secret-files.ts).
 */

/** Key paths of the settings that SIGHUP applies (the tokens, however given; the certificate is compared apart). */
const APPLIED_AT_RELOAD = /^http\.(admin_token|read_token|tls)(_file)?(\.|$)/;

/** At most this many paths are named; the rest are counted. */
const MAX_NAMED = 10;

export function settingsNeedingRestart(running: unknown, reread: unknown): string[] {
  const changed: string[] = [];
  walk(running, reread, "", changed);
  const named = changed.filter((path) => !APPLIED_AT_RELOAD.test(path) && !isSecretFromFile(path, reread));
  return named.length <= MAX_NAMED ? named : [...named.slice(0, MAX_NAMED), `and ${named.length - MAX_NAMED} more`];
}

const SECTION_KEY = /^(sinks|sources)\[("(?:[^"\\]|\\.)*")\]\.(\w+)$/;
const SASL_KEY = /^topics\.sasl\.(\w+)$/;

/**
 * `sinks["ch"].password`, `sources["pg"].password` or `topics.sasl.password` read from a file (noted in its section's
 * `secret_files`): taken at the next connection or Kafka authentication without a restart.
 */
function isSecretFromFile(path: string, config: unknown): boolean {
  const section = SECTION_KEY.exec(path);
  if (section) return readsFromFile(namedSection(config, section[1]!, JSON.parse(section[2]!) as string), section[3]!);
  const sasl = SASL_KEY.exec(path);
  const topics = isRecord(config) ? config["topics"] : undefined;
  return sasl !== null && isRecord(topics) && readsFromFile(topics["sasl"], sasl[1]!);
}

function namedSection(config: unknown, list: string, name: string): unknown {
  const items = isRecord(config) ? config[list] : undefined;
  return Array.isArray(items) ? items.find((item) => isRecord(item) && item["name"] === name) : undefined;
}

function readsFromFile(section: unknown, key: string): boolean {
  const files = isRecord(section) ? section["secret_files"] : undefined;
  return isRecord(files) && typeof files[key] === "string";
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
