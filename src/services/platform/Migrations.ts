import { NodeServices } from "@effect/platform-node"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Context, Effect, Layer } from "effect"
import { type Migrator, SqlClient } from "effect/sql"
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { type StorageOutage, storageOutage } from "./StorageOutage.ts"

const migrationsDir = fileURLToPath(new URL("../../../migrations/", import.meta.url))

/**
 * The numbered `migrations/NNNN_name.sql` files, read from disk so operators can see exactly
 * what runs. One statement per `;` at the end of a line (the wire protocol runs one per query).
 */
const sqlFileLoader: Migrator.Loader = Effect.sync(() =>
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

/** The schema's version: the migrations this build has, and how many the database has applied. */
export class Migrations extends Context.Service<Migrations, {
  /** How many migration files this build has. */
  readonly expected: number
  /** How many are applied in the database (rows of `effect_sql_migrations`); fails with StorageOutage. */
  readonly applied: Effect.Effect<number, StorageOutage>
}>()("bot/Migrations") {
  /** Applies the pending migrations, in order, when the layer is built (every program does at start). */
  static readonly layer = Layer.effect(
    Migrations,
    Effect.gen(function*() {
      yield* PgMigrator.run({ loader: sqlFileLoader }).pipe(Effect.provide(NodeServices.layer))
      const sql = yield* SqlClient.SqlClient
      const expected = (yield* sqlFileLoader).length
      return Migrations.of({
        expected,
        applied: sql<{ applied: bigint }>`select count(*) as applied from effect_sql_migrations`.pipe(
          Effect.map((rows) => Number(rows[0]?.applied ?? 0)),
          Effect.mapError(storageOutage),
          Effect.withSpan("Migrations.applied")
        )
      })
    })
  )
}
