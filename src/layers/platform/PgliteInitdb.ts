/**
 * The embedded database's first creation (initdb), in a process of its own. PGlite runs initdb
 * with a second Postgres instance and a copy of its heap: about 1.1 GB of RSS for 2-3 s, and
 * WebAssembly memory never shrinks, so done in the bot's own process it kept ~720 MB for good
 * (BENCHMARKS.md, Memory). Run as a script (`node PgliteInitdb.ts DIR`), it creates `DIR.new`
 * and renames it to DIR once complete, so an interrupted creation leaves nothing half made.
 */
import { PGlite } from "@electric-sql/pglite"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { existsSync, readdirSync, renameSync, rmSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { StartupError } from "../../services/platform/StartupError.ts"

/**
 * Postgres's own memory inside PGlite's WebAssembly heap, which never shrinks: 16 MB of shared
 * buffers instead of initdb's 128 MB saves about 120 MB of RSS (BENCHMARKS.md, Memory); one
 * session and small tables need no more. PGlite's defaults come first (single user, no parallel
 * workers, synchronous I/O), as it starts Postgres with them only when given none.
 */
export const startParams = [
  "--single", "-F", "-O", "-j",
  "-c", "search_path=public",
  "-c", "exit_on_error=false",
  "-c", "log_checkpoints=false",
  "-c", "max_worker_processes=0",
  "-c", "max_parallel_workers=0",
  "-c", "max_parallel_workers_per_gather=0",
  "-c", "max_parallel_maintenance_workers=0",
  "-c", "io_method=sync",
  "-c", "shared_buffers=16MB",
  "-c", "work_mem=2MB",
  "-c", "maintenance_work_mem=16MB",
  "-c", "temp_buffers=2MB"
]

/** What initdb writes into postgresql.conf, so tools opening the files alone get the same. */
const initdbParams = ["--set", "shared_buffers=16MB"]

/**
 * Creates the embedded database at `dir` (PGlite's data directory) when it has none yet, in a
 * child process. Fails with StartupError naming DATA_DIR and initdb's last error line.
 */
export const createIfMissing = (dir: string) =>
  existsSync(`${dir}/PG_VERSION`) ? Effect.void : Effect.tryPromise({
    try: () =>
      new Promise<void>((resolve, reject) => {
        if (existsSync(dir) && readdirSync(dir).length > 0) {
          return reject(new Error(`${dir} holds files but no database (no PG_VERSION): move it away`))
        }
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url), dir], { stdio: ["ignore", "ignore", "pipe"] })
        let stderr = ""
        child.stderr.on("data", (chunk: Buffer) => {
          stderr = (stderr + chunk.toString("utf8")).slice(-2_000)
        })
        child.once("error", reject)
        child.once("exit", (code, signal) =>
          code === 0
            ? resolve()
            : reject(new Error(stderr.trim().split("\n").at(-1) ?? `exited with ${code ?? signal}`)))
      }),
    catch: (error) =>
      new StartupError({ message: `DATA_DIR ${dir}: the embedded database could not be created: ${(error as Error).message}` })
  }).pipe(Effect.withSpan("PgliteInitdb.createIfMissing"))

if (import.meta.main) {
  const dir = process.argv[2]
  if (dir === undefined) throw new Error("usage: node PgliteInitdb.ts DIR")
  const draft = `${dir}.new`
  try {
    rmSync(draft, { recursive: true, force: true })
    const db = await PGlite.create(draft, { startParams, initDbStartParams: initdbParams })
    await db.close()
    renameSync(draft, dir)
  } catch (error) {
    rmSync(draft, { recursive: true, force: true })
    // One line for the parent's StartupError.
    process.stderr.write(`${String((error as Error).message ?? error).replaceAll("\n", " ")}\n`)
    process.exit(1)
  }
}
