import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer } from "effect"
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as lockfile from "proper-lockfile"
import { Migrations } from "../../services/platform/Migrations.ts"
import { StartupError } from "../../services/platform/StartupError.ts"
import { createIfMissing, startParams } from "./PgliteInitdb.ts"

// PGlite is one Postgres session: the socket server interleaves the extended-protocol messages of
// several connections ("portal does not exist"), so the client keeps to one connection and
// pipelines on it. The server also resets connections past its limit.
const embeddedConnections = 1
/** The port in the socket's file name only (`.s.PGSQL.5432`): nothing listens on TCP. */
const socketPort = 5432

/**
 * The lock's freshness (proper-lockfile renews its mtime every `update` ms): a lock older than
 * `stale` ms was left by a process that died, and is taken over.
 */
const lockTiming = { stale: 15_000, update: 3_000 }

/** Whether a process with this pid runs now (signal 0 only checks). */
const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** DATA_DIR made (if missing) and checked: a writable directory, or the reason in one sentence. */
const prepare = (dir: string) => {
  try {
    mkdirSync(dir, { recursive: true })
    accessSync(dir, constants.W_OK)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    const why = code === "EEXIST" || code === "ENOTDIR"
      ? "it is a file, not a directory"
      : code === "EACCES" || code === "EPERM" || code === "EROFS"
      ? `this process (uid ${process.getuid?.() ?? "?"}) may not write there (${code})`
      : `${(error as Error).message}`
    throw new StartupError({ message: `DATA_DIR ${dir} cannot hold the embedded database: ${why}. Set DATA_DIR to a writable directory.` })
  }
}

/**
 * One process per DATA_DIR: two embedded databases on the same files overwrite each other's
 * writes. The lock (`DATA_DIR/bot.lock`, proper-lockfile) is renewed while the process runs, so
 * one left by a crash is taken over; `bot.pid` names the holder for the refusal. Lost while
 * running (this process froze past `stale` and another took it), the process stops at once
 * rather than write beside the other.
 */
const lockDataDir = (dir: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        prepare(dir)
        const pidFile = `${dir}/bot.pid`
        const options = {
          ...lockTiming,
          realpath: false,
          lockfilePath: `${dir}/bot.lock`,
          onCompromised: (error: Error) => {
            process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level: "FATAL", message: "the DATA_DIR lock was lost: stopping", error: error.message, dataDir: dir })}\n`)
            process.exit(1)
          }
        }
        const release = await lockfile.lock(dir, options).catch(async (error: NodeJS.ErrnoException) => {
          if (error.code !== "ELOCKED") throw error
          const holder = Number(readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim())
          // The holder crashed less than `stale` ago: its lock is not stale yet, but it is gone.
          if (holder > 0 && holder !== process.pid && !isRunning(holder)) {
            rmSync(options.lockfilePath, { recursive: true, force: true })
            return lockfile.lock(dir, options)
          }
          const who = holder > 0 ? `process ${holder}` : "another process"
          throw new StartupError({ message: `DATA_DIR ${dir} is in use by ${who}: stop it, or give this one another DATA_DIR.` })
        })
        writeFileSync(pidFile, String(process.pid))
        return release
      },
      catch: (error) =>
        error instanceof StartupError
          ? error
          : new StartupError({ message: `DATA_DIR ${dir} cannot be locked: ${(error as Error).message}` })
    }),
    (release) => Effect.promise(() => release().catch(() => undefined))
  )

/**
 * Embedded Postgres (PGlite, in WASM, data under `dataDir`) behind a unix socket in a private directory, so the same
 * PgClient and SQL run as on a server; migrated before use. Fails with StartupError when
 * DATA_DIR is not a writable directory or another process holds it.
 */
export const layer = (dataDir: string) =>
  Migrations.layer.pipe(Layer.provideMerge(Layer.unwrap(
    Effect.gen(function*() {
      const dir = resolve(dataDir)
      yield* lockDataDir(dir)
      yield* createIfMissing(`${dir}/pglite`)
      // A unix socket in a fresh 0700 directory (mkdtemp's mode), not a TCP port: PGlite's
      // server has no authentication, so other local users must not reach it (issue 9).
      const socketDir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "bot-pg-"))),
        (socketDir) => Effect.sync(() => rmSync(socketDir, { recursive: true, force: true }))
      )
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const db = await PGlite.create(`${dir}/pglite`, { startParams })
          const server = new PGLiteSocketServer({ db, path: `${socketDir}/.s.PGSQL.${socketPort}`, maxConnections: embeddedConnections })
          await server.start()
          return server
        }),
        (server) => Effect.promise(() => server.stop().then(() => server.db.close()))
      )
      yield* Effect.logInfo("embedded Postgres (PGlite) started").pipe(Effect.annotateLogs({ dataDir: dir }))
      return PgClient.layer({
        // A host that is a directory is the unix socket `${host}/.s.PGSQL.${port}` (libpq's rule, which pg follows).
        host: socketDir,
        port: socketPort,
        username: "postgres",
        database: "postgres",
        maxConnections: embeddedConnections,
        connectTimeout: Duration.seconds(5)
      })
    })
  )))
