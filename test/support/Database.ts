import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as DatabasePostgres from "../../src/layers/platform/DatabasePostgres.ts"
import { AppConfig } from "../../src/services/platform/AppConfig.ts"
import { createDatabase, queryDatabase } from "./Stack.ts"

/**
 * A fresh database on the real Postgres for the service tests that need storage: its SqlClient
 * layer (migrated, then `seed` run), AppConfig from `settings` (the required ones filled in),
 * and psql on it.
 */
export const testDatabase = (settings: Readonly<Record<string, string>> = {}, seed = "select 1") => {
  const database = createDatabase()
  const url = `postgres://postgres@127.0.0.1:${process.env.PGPORT ?? 5432}/${database.name}`
  const config = AppConfig.layer.pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ TELEGRAM_BOT_TOKEN: "1:t", OPENAI_API_KEY: "k", ...settings })))
  )
  const statements = seed.split(";").map((statement) => statement.trim()).filter((statement) => statement.length > 0)
  const seeded = Layer.effectDiscard(
    SqlClient.SqlClient.use((sql) => Effect.forEach(statements, (statement) => sql.unsafe(statement), { discard: true }))
  ).pipe(
    Layer.provideMerge(DatabasePostgres.layer(Redacted.make(url)))
  )
  return {
    layer: Layer.mergeAll(seeded, config),
    query: (sql: string) => queryDatabase(database.name, sql),
    drop: database.drop
  }
}
