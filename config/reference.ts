/**
 * Renders docs/config-reference.md from the config schema, so the defaults are documented in
 * exactly one place. `node config/reference.ts --write` updates the page; a test fails when it is stale.
 */
import { writeFileSync } from "node:fs";
import { configSchema, SECRET_KEYS } from "./schema.ts";
import { documentKeys } from "./schema-walk.ts";

function showDefault(value: unknown): string {
  if (value === undefined) return "";
  return `\`${JSON.stringify(value)}\``;
}

export function renderConfigReference(): string {
  const rows = documentKeys(configSchema).map((key) => {
    const required = key.required ? "**required**" : showDefault(key.default) || "\u2014";
    return `| \`${key.path}\` | ${key.type} | ${required} | ${key.description.replace(/\|/g, "\\|")} |`;
  });
  return `# Configuration reference

<!-- Generated from config/schema.ts by \`npm run docs:config\`. Do not edit by hand. -->

A Sluice deployment is one YAML file, checked with \`sluice validate -c FILE\`. Examples:
[minimal](../config/examples/minimal.yaml) and [every option](../config/examples/full.yaml).

- **Environment variables**: \`\${NAME}\` is replaced by the variable's value anywhere in a value;
  \`\${NAME:-default}\` gives a default for an unset or empty variable; \`$\${\` writes a literal \`\${\`.
  An unquoted value that is only a reference takes the YAML type of its value (\`port: \${PGPORT}\` is a number).
  An unset variable without a default is an error. References do not nest: \`\${A:-\${B}}\` is refused (a
  default is plain text), so set the variable or write the default out.
- **Secrets from files**: any ${SECRET_KEYS.map((k) => `\`${k}\``).join(", ")} may instead be written as
  \`<key>_file: PATH\`; the file's contents (one trailing newline removed) become the value. A relative
  path is read from the config file's folder. Giving both is an error.
- **Files Sluice reads** are found the same way: a relative \`master_key_file\`, \`previous_master_key_files\`,
  \`tls.ca_file\`, \`tls.cert_file\`, \`tls.key_file\` (sources, \`topics\`, sinks, \`http\`) or outbox
  \`payload.schemas\` file is read from the config file's folder, whatever the working directory;
  \`sluice validate\` checks that each one it would read can be read (the master key's content too).
  *Upgrading*: earlier versions read these (all but \`*_file\` secrets) from the working directory; a relative
  one written for another working directory than the config file's folder must be changed (\`sluice validate\` names it).
  **Data paths are not**: a relative \`topics.path\` (embedded log) or DuckDB sink \`path\` is from the
  working directory of the process (\`./data/sluice.db\` lands in the directory \`sluice run\` starts in).
  \`sluice validate\` prints each data path absolute, and the \`sluice started\` log line has them
  (\`data_paths\`); use absolute paths to be independent of where the daemon starts.
- **Durations** are written \`500ms\`, \`5s\`, \`2m\`, \`1h\`, \`7d\` (or a number of milliseconds);
  **sizes** \`512KiB\`, \`64MiB\`, \`1GB\` (or a number of bytes). Defaults below are shown in
  milliseconds and bytes. Each has a range (in its description; otherwise up to 24 days or 1 TiB):
  a value outside it, or 0 where 0 has no meaning, is an error.
- **Numbers** are written in decimal: \`0x10\` or \`0o20\` is refused rather than read as 16 (quote it if
  it is text). A NUL character (\`\\0\`) in any value is refused.
- **Aliases**: YAML anchors, aliases and merge keys work (\`<<: *defaults\`); top-level keys starting
  with \`x-\` are ignored, so shared settings can live there (\`x-postgres: &postgres {...}\`). An alias
  without its anchor, or aliases that expand more than 100 times, is an error.
- **No two parts on one thing**: two DuckDB sinks (or a DuckDB sink and the embedded topic log) on one
  file, two PostgreSQL sources on one replication slot of one database, two MySQL sources with one
  \`server_id\` on one server, and HTTP paths that overlap (\`schema_registry.path\`, \`metrics.path\`,
  and the daemon's \`/healthz\`, \`/readyz\`, \`/status\`, \`/sinks\`, \`/sources\`) are errors.
- Unknown keys are errors. Every problem is reported at once, each with its file, line, column
  and key path, and a suggestion for a misspelt key or value.
- A \`(kind: x)\` in a path means the keys apply when that section's \`kind\` is \`x\`; \`[]\` means
  each item of a list.

| key | type | default | meaning |
| --- | --- | --- | --- |
${rows.join("\n")}
`;
}

if (process.argv.includes("--write")) {
  writeFileSync(new URL("../docs/config-reference.md", import.meta.url), renderConfigReference());
}
