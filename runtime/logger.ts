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
      hooks: { streamWrite: redact },
    },
    destination ?? stdoutDestination(),
  );
}

export function stdoutDestination(): DestinationStream {
  return pino.destination({ dest: 1, sync: false });
}
