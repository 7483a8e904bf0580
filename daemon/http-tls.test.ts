/**
 * http.tls's certificate and key are checked as the start and a SIGHUP read them, and by sluice validate. Found on a
 * live deployment: validate said ok for a certificate file that was no PEM and for a key of another certificate, and
 * the start then ended with "unexpected failure: Error: error:0480006C:PEM routines::no start line" and a stack trace
 * from inside Node's HTTPS server, naming neither file.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { configSchema } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import { readTlsCredentials } from "./http-tls.ts";

const cli = new URL("./sluice.js", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "sluice-http-tls-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
for (const name of ["server", "other"]) ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", "/CN=127.0.0.1");
writeFileSync(join(dir, "garbage.pem"), "not a certificate\n");

const paths = { cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
function use(cert: string, key: string): void {
  copyFileSync(join(dir, cert), paths.cert);
  copyFileSync(join(dir, key), paths.key);
}
const yaml = join(dir, "sluice.yaml");
writeFileSync(
  yaml,
  `name: t\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\ntopics: {kind: embedded, path: "${join(dir, "log.db")}"}\nhttp:\n  tls: {cert_file: "${paths.cert}", key_file: "${paths.key}"}\n`,
);
const config = configSchema.parse({
  name: "t",
  sources: [{ name: "pg", kind: "postgres", database: "app", user: "u", tables: ["public.t"] }],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  http: { tls: { cert_file: paths.cert, key_file: paths.key } },
});
const validate = () => {
  const result = spawnSync(process.execPath, [cli, "validate", "-c", yaml], { encoding: "utf8", env: { ...process.env, SLUICE_CONFIG: "" } });
  return { code: result.status, out: result.stdout + result.stderr };
};

test("a certificate file that is no PEM certificate is named at http.tls.cert_file, by validate and by the start (or a SIGHUP)", () => {
  use("garbage.pem", "server.key");
  const result = validate();
  assert.equal(result.code, 2, result.out);
  assert.match(result.out, new RegExp(`http\\.tls\\.cert_file: "${paths.cert}" holds no certificate Sluice can use`));
  assert.throws(() => readTlsCredentials(config), (e: unknown) => e instanceof SluiceError && e.code === "HTTP_TLS_INVALID" && e.message.includes(paths.cert) && /http\.tls\.cert_file/.test(e.message));
  use("server.key", "server.key");
  assert.match(validate().out, /http\.tls\.cert_file: .* holds no certificate/, "a private key given as the certificate");
});

test("a private key that is not the certificate's is named with both files at http.tls.key_file", () => {
  use("server.pem", "other.key");
  const result = validate();
  assert.equal(result.code, 2, result.out);
  assert.match(result.out, new RegExp(`http\\.tls\\.key_file: the private key "${paths.key}" is not the key of the certificate "${paths.cert}"`));
  assert.throws(() => readTlsCredentials(config), (e: unknown) => e instanceof SluiceError && e.code === "HTTP_TLS_INVALID" && /is not the key of the certificate/.test(e.message));
  use("server.pem", "garbage.pem");
  assert.match(validate().out, /http\.tls\.key_file: .* holds no private key Sluice can use/);
});

test("a certificate and its key pass, and are what the listener gets", () => {
  use("server.pem", "server.key");
  const result = validate();
  assert.equal(result.code, 0, result.out);
  const credentials = readTlsCredentials(config)!;
  assert.ok(credentials.cert.toString().includes("BEGIN CERTIFICATE") && credentials.key.toString().includes("PRIVATE KEY"));
});
