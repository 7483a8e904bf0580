/**
 * A small Java program used by tests and benches (a third-party reader, a reference engine): its
 * jars come from Maven Central through the pom.xml beside its source, and the jars and compiled
 * class are cached, rebuilt only when the pom or the source changes.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A JDK tool: from JAVA_HOME when it is set, else from PATH. */
export function javaTool(tool: string): string {
  const home = process.env["JAVA_HOME"];
  return home ? join(home, "bin", tool) : tool;
}

export interface JavaProgram {
  /** The folder holding pom.xml and the source. */
  readonly dir: string;
  /** The source file's name in `dir`, e.g. "Main.java". */
  readonly source: string;
  /** Where the jars and the class are kept; replaced whole when rebuilt. */
  readonly cache: string;
  /** Maven's local repository (outside `cache`, so a rebuild does not fetch everything again). */
  readonly repository: string;
}

/** Fetches the jars and compiles the source into `cache`, unless it holds this pom and source already; returns the class path. */
export async function buildJavaProgram(program: JavaProgram): Promise<string> {
  const pom = join(program.dir, "pom.xml");
  const stamp = readFileSync(pom, "utf8") + readFileSync(join(program.dir, program.source), "utf8");
  const marker = join(program.cache, ".built");
  const classPath = `${join(program.cache, "classes")}:${join(program.cache, "jars")}/*`;
  if (existsSync(marker) && readFileSync(marker, "utf8") === stamp) return classPath;
  const building = `${program.cache}.${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(join(building, "classes"), { recursive: true });
  await run("mvn", ["-B", "-q", `-Dmaven.repo.local=${program.repository}`, "-f", pom, "dependency:copy-dependencies", `-DoutputDirectory=${join(building, "jars")}`], { maxBuffer: 64 << 20 });
  await run(javaTool("javac"), ["-cp", `${join(building, "jars")}/*`, "-d", join(building, "classes"), join(program.dir, program.source)]);
  writeFileSync(join(building, ".built"), stamp);
  rmSync(program.cache, { recursive: true, force: true });
  renameSync(building, program.cache);
  return classPath;
}
