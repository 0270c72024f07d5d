import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { Migrations } from "../../services/platform/Migrations.ts"

// PGlite is one Postgres session: the socket server interleaves the extended-protocol messages of
// several connections ("portal does not exist"), so the client keeps to one connection and
// pipelines on it. The server also resets connections past its limit.
const embeddedConnections = 1

/**
 * Embedded Postgres (PGlite, in WASM, data under `dataDir`) behind a loopback socket, so the same
 * PgClient and SQL run as on a server; migrated before use.
 */
export const layer = (dataDir: string) =>
  Migrations.layer.pipe(Layer.provideMerge(Layer.unwrap(
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.promise(async () => {
          mkdirSync(dataDir, { recursive: true })
          const db = await PGlite.create(`${dataDir}/pglite`)
          const server = new PGLiteSocketServer({ db, port: 0, host: "127.0.0.1", maxConnections: embeddedConnections })
          await server.start()
          return server
        }),
        (server) => Effect.promise(() => server.stop().then(() => server.db.close()))
      )
      const [host, port] = server.getServerConn().split(":")
      yield* Effect.logInfo("embedded Postgres (PGlite) started").pipe(Effect.annotateLogs({ dataDir }))
      return PgClient.layer({
        host: host!,
        port: Number(port),
        username: "postgres",
        database: "postgres",
        maxConnections: embeddedConnections,
        connectTimeout: Duration.seconds(5)
      })
    })
  )))
