import { PgClient } from "@effect/sql-pg"
import { Duration, Layer, Redacted } from "effect"
import type { SqlError } from "effect/sql"
import { Migrations } from "../../services/platform/Migrations.ts"
import { StartupError } from "../../services/platform/StartupError.ts"

/** Connections per process: enough for a worker's concurrent turns, few enough for N processes. */
const maxConnections = 20

/** Where DATABASE_URL points, without its password: `host:port/database`. */
const whereOf = (url: Redacted.Redacted) => {
  try {
    const parsed = new URL(Redacted.value(url))
    return `${parsed.hostname}:${parsed.port || "5432"}${parsed.pathname}`
  } catch {
    return "an address that is not a URL"
  }
}

/** The driver's own words for a failed connection (ECONNREFUSED, a missing database, an unknown role). */
const reasonOf = (error: SqlError.SqlError): string => {
  const cause = (error.reason as { readonly cause?: unknown }).cause
  return cause instanceof Error && cause.message !== "" ? cause.message : error.message
}

/**
 * The SQL client on DATABASE_URL, migrated before use. Fails with StartupError naming the
 * database's address (never its password) when it cannot be reached at start.
 */
export const layer = (url: Redacted.Redacted) =>
  Migrations.layer.pipe(
    Layer.provideMerge(PgClient.layer({
      url,
      maxConnections,
      connectTimeout: Duration.seconds(5),
      // No statement may hold a connection (or a lock) for long: the server ends it.
      startupParameters: { statement_timeout: "60s", lock_timeout: "10s" },
      // A connection that died silently is noticed rather than waited on.
      keepAlive: Duration.seconds(30),
      // Statements of concurrent fibers share a connection, pipelined into one write: a burst's
      // turns wrote one statement per write, and the writes (syscalls on both sides) were most
      // of the cost (issue 10, 300 chats at once: Postgres CPU 2.5 -> 1.1 s, first LLM requests
      // 1.5 s sooner). A transaction still has its connection to itself.
      multiplex: true
    })),
    // The first connection is the migration's.
    Layer.catchTag("SqlError", (error) =>
      Layer.effectContext(new StartupError({
        message: `cannot reach the database at ${whereOf(url)} (DATABASE_URL): ${reasonOf(error)}.`
      })))
  )
