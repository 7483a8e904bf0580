import { pino } from "pino";
import type { DestinationStream, Logger } from "pino";
import { redact } from "../config/redact.ts";

export type { Logger };

/** JSON lines on standard output (or the given stream), one logger per process with child loggers per component; secrets redacted. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "sluice" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // The config's secrets never reach a log line, whatever a driver put in an error.
      hooks: { streamWrite: (line) => terminalSafeJson(redact(line)) },
    },
    destination ?? stdoutDestination(),
  );
}

/**
 * Characters JSON leaves as they are that a terminal acts on: DEL, the C1 controls (U+009B is a one-character CSI)
 * and the bidi embedding, override and isolate characters, written as \u escapes. They only occur in a line's
 * strings (table names, a server's error), where the escape is the same JSON; JSON already escapes C0 (ESC).
 * A log is read on a terminal too (`sluice run`, a command's warnings on standard error).
 */
const JSON_TERMINAL_UNSAFE = /[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export function terminalSafeJson(line: string): string {
  return line.replace(JSON_TERMINAL_UNSAFE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}
