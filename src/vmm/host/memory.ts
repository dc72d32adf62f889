/**
 * Guest RAM on transparent huge pages, as QEMU asks for its RAM blocks.
 *
 * v86 keeps guest RAM inside its wasm memory, which V8 maps with 4 KiB pages. The host kernel
 * then takes one page fault for every 4 KiB page that is touched first: the loader's writes of
 * vmlinux and the initrd (32 MB, about 8,000 faults), then every page the guest touches. In a
 * VM host like this one such a fault costs about 10 µs. Where transparent huge pages are set to
 * `madvise` (the common default), `madvise(MADV_HUGEPAGE)` on guest RAM makes those faults one
 * per 2 MiB. Measured here, creating a machine with the default image went from about 270 to 195 ms.
 *
 * Linux only, through koffi. Never throws.
 * @module
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";

const MADV_HUGEPAGE = 14;

type Madvise = (addr: Uint8Array, len: number, advice: number) => number;
let madvise: Madvise | undefined | null;

async function loadMadvise(): Promise<Madvise | null> {
  if (madvise === undefined) {
    try {
      const koffi = (await import("koffi")).default;
      const fn = koffi.load("libc.so.6").func("int madvise(void *addr, unsigned long len, int advice)");
      madvise = (addr, len, advice) => fn(addr, len, advice) as number;
    } catch {
      madvise = null;
    }
  }
  return madvise;
}

/** The host's transparent huge page mode (`always`, `madvise`, `never`), or undefined off Linux. */
export function transparentHugePageMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

/**
 * Asks the host kernel to back `ram` with transparent huge pages. `ram` must start on a page
 * boundary (wasm memories and v86's RAM inside them do). Returns whether the advice was taken;
 * false where THP is `never`, off Linux, or without koffi.
 */
export async function adviseHugePages(ram: Uint8Array): Promise<boolean> {
  if (process.platform !== "linux" || ram.byteLength === 0) return false;
  const mode = transparentHugePageMode();
  if (mode === undefined || mode === "never") return false;
  const fn = await loadMadvise();
  if (fn === null) return false;
  // Whole pages only: a trailing partial page is left as it is.
  const len = ram.byteLength - (ram.byteLength % 4096);
  return len > 0 && fn(ram, len, MADV_HUGEPAGE) === 0;
}

/**
 * Reads a whole file into memory that can sit on huge pages: a wasm memory (page-aligned and
 * zero-filled on demand, unlike a Node Buffer, whose start is not page-aligned) advised with
 * {@link adviseHugePages}. For the 16 MB images a boot reads, the fresh pages' faults dominate a
 * plain read; reading the default initrd and vmlinux went from about 90 to 30 ms here. Falls back
 * to `readFileSync` for small files and where no huge pages are to be had.
 */
export async function readFileHuge(path: string): Promise<Uint8Array> {
  const wasm = (globalThis as unknown as { WebAssembly?: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < 2 << 20 || size > 1 << 30 || wasm === undefined) return readFileSync(fd);
    const buf = new Uint8Array(new wasm.Memory({ initial: Math.ceil(size / 65536) }).buffer, 0, size);
    if (!(await adviseHugePages(buf))) return readFileSync(fd);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n <= 0) throw new Error(`${path}: file shrank while being read (${off} of ${size} bytes)`);
      off += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}
