/**
 * Each thread's fixed memory is mostly the modules it loads (their code and state stay in its V8
 * heap: zod alone holds ~3 MiB, docs/benchmarks.md "The process's fixed footprint"). The static
 * imports of a thread's entry are loaded whatever the config; connectors are imported where a
 * config needs them (daemon/components.ts). This walks the static (non-type) imports and checks
 * that no thread loads a package its role does not need.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Static value imports and re-exports of a module (`import type` / `export type` are erased; dynamic import() is not followed). */
function staticImports(source: string): string[] {
  const found: string[] = [];
  const statement = /^\s*(import|export)\s+(?!type\s)([^;"'()]*?\s+from\s+)?["']([^"']+)["']/gm;
  for (const match of source.matchAll(statement)) {
    if (match[1] === "export" && match[2] === undefined) continue;
    found.push(match[3]!);
  }
  return found;
}

/** Every static import of the modules reached through static imports from `entry` (a path under the repository), with the importing file. */
function importsReached(entry: string): { specifier: string; file: string }[] {
  const found: { specifier: string; file: string }[] = [];
  const seen = new Set<string>();
  const pending = [join(ROOT, entry)];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of staticImports(readFileSync(file, "utf8"))) {
      found.push({ specifier, file: file.slice(ROOT.length + 1) });
      if (!specifier.startsWith(".")) continue;
      const target = resolve(dirname(file), specifier);
      if (existsSync(target) && /\.(ts|js)$/.test(target)) pending.push(target);
    }
  }
  return found;
}

/** Every package reached through static imports from `entry`. */
function packagesReached(entry: string): Set<string> {
  const packages = new Set<string>();
  for (const { specifier } of importsReached(entry)) {
    if (specifier.startsWith(".") || specifier.startsWith("node:")) continue;
    packages.add(specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!);
  }
  return packages;
}

/** Node built-in modules (`node:...`) imported as values by the modules reached through static imports from `entry`, with the importing file. */
function builtinImports(entry: string): { builtin: string; file: string }[] {
  return importsReached(entry)
    .filter((i) => i.specifier.startsWith("node:"))
    .map((i) => ({ builtin: i.specifier, file: i.file }));
}

const CONNECTOR_PACKAGES = ["pg", "pg-logical-replication", "mysql2", "kafkajs", "@elastic/elasticsearch", "@clickhouse/client", "@duckdb/node-api", "libpg-query"];

test("the walker sees static imports and skips type-only ones", () => {
  const source = [
    'import { a } from "./a.ts";',
    'import type { B } from "./b.ts";',
    'import {\n  c,\n  type D,\n} from "c-package";',
    'export { e } from "./e.ts";',
    'export type { F } from "./f.ts";',
    'import "./side-effect.ts";',
    'const lazy = await import("lazy-package");',
  ].join("\n");
  assert.deepEqual(staticImports(source), ["./a.ts", "c-package", "./e.ts", "./side-effect.ts"]);
});

test("a sink thread loads no config validation (zod, yaml) and no connector until its sink needs one", () => {
  const reached = packagesReached("daemon/sink-worker.ts");
  for (const name of ["zod", "yaml", ...CONNECTOR_PACKAGES]) assert.ok(!reached.has(name), `daemon/sink-worker.ts loads ${name} (${[...reached].join(", ")})`);
});

test("the daemon's main thread loads no connector until its config needs one", () => {
  // daemon/sluice.js imports the command line (and, for sluice run, the memory re-exec) with import().
  for (const entry of ["daemon/cli.ts", "daemon/memory-exec.ts"]) {
    const reached = packagesReached(entry);
    for (const name of CONNECTOR_PACKAGES) assert.ok(!reached.has(name), `${entry} loads ${name} (${[...reached].join(", ")})`);
  }
});

test("no thread imports node:http as an ES module (its module namespace reads http.WebSocket, which loads Node's bundled undici: ~30 ms of every start)", () => {
  for (const entry of ["daemon/cli.ts", "daemon/memory-exec.ts", "daemon/sink-worker.ts"]) {
    const http = builtinImports(entry).filter((i) => i.builtin === "node:http");
    assert.deepEqual(http, [], `${entry} reaches ${http.map((i) => i.file).join(", ")}: use process.getBuiltinModule("node:http")`);
  }
});

test("the daemon's main thread loads the embedded topic log (node:sqlite) only when its config has one", () => {
  for (const entry of ["daemon/cli.ts", "daemon/memory-exec.ts", "daemon/sink-worker.ts"]) {
    const sqlite = builtinImports(entry).filter((i) => i.builtin === "node:sqlite");
    assert.deepEqual(sqlite, [], `${entry} reaches node:sqlite through ${sqlite.map((i) => i.file).join(", ")}`);
  }
});

test("a sink thread loads neither capture's encoding nor the schema registry's stores, REST API and CLI (daemon/sink-components.ts, not components.ts)", () => {
  const files = new Set(importsReached("daemon/sink-worker.ts").map((i) => i.file));
  const capture = ["daemon/components.ts", "schema-registry/index.ts", "schema-registry/change-encoder.ts", "schema-registry/local-registry.ts", "schema-registry/rest-server.ts", "schema-registry/cli.ts"];
  for (const file of capture) assert.ok(!files.has(file), `daemon/sink-worker.ts reaches ${file}`);
});

/** Source files the daemon may load: every module under the source folders but tests. */
function daemonSources(): string[] {
  return ["config", "connectors", "daemon", "runtime", "schema-registry"].flatMap((folder) =>
    readdirSync(join(ROOT, folder), { recursive: true, encoding: "utf8" })
      .filter((file) => /\.(ts|js)$/.test(file) && !file.endsWith(".test.ts"))
      .map((file) => `${folder}/${file}`),
  );
}

test("the daemon's source files hold only Latin-1 characters, so that V8 keeps each module's source as one byte a character", () => {
  // A module's source stays in the heap of every thread that loads it (0.3-0.4 MiB per thread for
  // Sluice's modules); one character above U+00FF, even in a comment, makes it two bytes a
  // character. Write ASCII in comments ("->", "--", "..."), and \u escapes in strings.
  const wide = daemonSources().filter((file) => /[^\u0000-\u00ff]/.test(readFileSync(join(ROOT, file), "utf8")));
  assert.deepEqual(wide, []);
});
