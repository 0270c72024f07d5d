import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { NodeServices } from "@effect/platform-node"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Duration, Effect, Layer, Option } from "effect"
import { Migrator } from "effect/sql"
import { mkdirSync, readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { AppConfig } from "../services/AppConfig.ts"

const migrationsDir = fileURLToPath(new URL("../../migrations/", import.meta.url))

/**
 * Numbered `.sql` files, one statement per `;` at the end of a line (the wire protocol runs one
 * statement per query). Read from disk so operators can see exactly what runs.
 */
export const sqlFileLoader: Migrator.Loader = Effect.sync(() =>
  readdirSync(migrationsDir)
    .flatMap((file) => {
      const match = /^(\d+)_(.+)\.sql$/.exec(file)
      if (!match) return []
      const statements = readFileSync(migrationsDir + file, "utf8")
        .split(/;\s*$/m)
        .map((statement) => statement.replace(/^\s*--.*$/gm, "").trim())
        .filter((statement) => statement.length > 0)
      const run = Effect.gen(function*() {
        const sql = yield* PgClient.PgClient
        for (const statement of statements) yield* sql.unsafe(statement)
      })
      return [[Number(match[1]), match[2]!, Effect.succeed(run)] as const]
    })
    .sort((a, b) => a[0] - b[0])
)

const MigrationsLive = PgMigrator.layer({ loader: sqlFileLoader }).pipe(Layer.provide(NodeServices.layer))

// PGlite is one Postgres session: the socket server interleaves the extended-protocol messages of
// several connections ("portal does not exist"), so the client keeps to one connection and
// pipelines on it. The server also resets connections past its limit.
const embeddedConnections = 1

/** PGlite (Postgres in WASM, data under DATA_DIR) behind a loopback socket, so the same client runs. */
const embedded = (dataDir: string) =>
  Layer.unwrap(
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
  )

/** The SQL client on DATABASE_URL, or embedded Postgres when it is unset; migrated before use. */
export const DatabaseLive = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const client = Option.match(config.databaseUrl, {
      onNone: () => embedded(config.dataDir),
      onSome: (url) =>
        PgClient.layer({
          url,
          maxConnections: 20,
          connectTimeout: Duration.seconds(5),
          // No statement may hold a connection (or a lock) for long: the server ends it.
          startupParameters: { statement_timeout: "60s", lock_timeout: "10s" },
          // A connection that died silently is noticed rather than waited on.
          keepAlive: Duration.seconds(30)
        })
    })
    return MigrationsLive.pipe(Layer.provideMerge(client))
  })
)
