import { NodeServices } from "@effect/platform-node"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import type { Migrator, SqlClient } from "effect/sql"
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const migrationsDir = fileURLToPath(new URL("../../../migrations/", import.meta.url))

/**
 * The numbered `migrations/NNNN_name.sql` files, read from disk so operators can see exactly
 * what runs. One statement per `;` at the end of a line (the wire protocol runs one per query).
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

/** Applies the pending migrations (ids kept in `effect_sql_migrations`) when the layer is built. */
export const migrated = <E, R>(client: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, E, R>) =>
  PgMigrator.layer({ loader: sqlFileLoader }).pipe(Layer.provide(NodeServices.layer), Layer.provideMerge(client))
