/**
 * Small file systems for the tests of a full or failing disk: a tmpfs of a given size, or a loop-mounted ext4 image.
 * Both need root; where the mount cannot be made the answer is the reason, for t.skip. Mount inside the test, not as
 * the file loads (a run that filters the test out would leave the mount behind), and call unmount() in a finally.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

export interface Mounted {
  readonly mount: string;
  /** Unmounts and removes the folders made for it. */
  readonly unmount: () => void;
}

export interface MountedExt4 extends Mounted {
  /** The sysfs file that makes ext4 take an error as if from the disk (with errors=remount-ro, it turns read-only). */
  readonly trigger: string;
}

/** A tmpfs of `size` (e.g. "3m"). */
export function mountTmpfs(size: string): Mounted | string {
  if (process.getuid?.() !== 0) return `needs root to mount a ${size} tmpfs`;
  const mount = mkdtempSync(join(tmpdir(), "sluice-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mount], { stdio: "ignore" });
  } catch {
    rmSync(mount, { recursive: true, force: true });
    return "mounting a tmpfs was refused";
  }
  return {
    mount,
    unmount: () => {
      try {
        execFileSync("umount", [mount]);
      } finally {
        rmSync(mount, { recursive: true, force: true });
      }
    },
  };
}

/**
 * A 16 MiB ext4 image loop-mounted. `noReservedBlocks`: no blocks kept for root (so dd as root fills it as any user
 * would; ext4 still keeps a few KB free, which tmpfs does not). `remountReadOnlyOnError`: errors=remount-ro.
 */
export function mountExt4(options: { noReservedBlocks?: boolean; remountReadOnlyOnError?: boolean } = {}): MountedExt4 | string {
  if (process.getuid?.() !== 0) return "needs root to loop-mount an ext4 image";
  const base = mkdtempSync(join(tmpdir(), "sluice-ext4-"));
  const image = join(base, "fs.img");
  const mount = join(base, "mnt");
  try {
    execFileSync("truncate", ["-s", "16M", image]);
    execFileSync("mkfs.ext4", ["-q", "-F", ...(options.noReservedBlocks ? ["-m", "0"] : []), image], { stdio: "ignore" });
    mkdirSync(mount);
    execFileSync("mount", ["-o", options.remountReadOnlyOnError ? "loop,errors=remount-ro" : "loop", image, mount], { stdio: "ignore" });
  } catch {
    rmSync(base, { recursive: true, force: true });
    return "loop-mounting an ext4 image was refused";
  }
  const unmount = (): void => {
    try {
      execFileSync("umount", [mount]);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  };
  let device: string;
  try {
    device = execFileSync("findmnt", ["-n", "-o", "SOURCE", mount], { encoding: "utf8" }).trim();
  } catch (error) {
    unmount();
    throw error;
  }
  return { mount, trigger: `/sys/fs/ext4/${basename(device)}/trigger_fs_error`, unmount };
}
