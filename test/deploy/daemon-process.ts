// A real `sluice run` process for the deploy tests: started on a free loopback port, its JSON log
// lines collected, stopped with SIGTERM.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { repoPath, repoRoot } from "./support.ts";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface LogLine {
  level?: string;
  msg?: string;
  [key: string]: unknown;
}

export class DaemonProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  private exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(configFile: string, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [repoPath("daemon/sluice.js"), "run", "-c", configFile], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exit = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    let buffered = "";
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        this.raw.push(line);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a JSON log line (e.g. a usage error on stderr): kept in raw
        }
      }
    };
    this.child.stdout!.on("data", onData);
    this.child.stderr!.on("data", onData);
  }

  /** Resolves with the first log line `matches` accepts; rejects when the process exits first or after timeoutMs. */
  async waitForLine(matches: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exit.then(() => (exited = true));
    for (;;) {
      const line = this.lines.find(matches);
      if (line) return line;
      if (exited) throw new Error(`sluice exited before the expected log line:\n${this.raw.slice(-30).join("\n")}`);
      if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms:\n${this.raw.slice(-30).join("\n")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** SIGTERM, then the exit code (SIGKILL after timeoutMs). */
  async stop(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }
}
