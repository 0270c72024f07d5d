import { PgClient } from "@effect/sql-pg"
import { Duration, Layer, type Redacted } from "effect"
import { Migrations } from "../../services/platform/Migrations.ts"

/** Connections per process: enough for a worker's concurrent turns, few enough for N processes. */
const maxConnections = 20

/** The SQL client on DATABASE_URL, migrated before use. */
export const layer = (url: Redacted.Redacted) =>
  Migrations.layer.pipe(Layer.provideMerge(PgClient.layer({
    url,
    maxConnections,
    connectTimeout: Duration.seconds(5),
    // No statement may hold a connection (or a lock) for long: the server ends it.
    startupParameters: { statement_timeout: "60s", lock_timeout: "10s" },
    // A connection that died silently is noticed rather than waited on.
    keepAlive: Duration.seconds(30)
  })))
