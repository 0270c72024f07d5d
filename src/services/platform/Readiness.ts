import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { JobQueue } from "./JobQueue.ts"
import { sqlFileLoader } from "./Migrations.ts"

/** Each check's longest wait: /ready must answer even when a dependency hangs. */
const checkTimeout = "2 seconds"

export interface ReadinessReport {
  readonly ready: boolean
  readonly database: "ok" | "migrations pending" | "unreachable"
  readonly queue: "ok" | "unreachable"
}

/** Whether this process can do its work now: the database reachable and migrated, the queue reachable. */
export class Readiness extends Context.Service<Readiness, {
  /** Both checks at once, each bounded by 2 s; never fails (a failed check is reported). */
  readonly check: Effect.Effect<ReadinessReport>
}>()("bot/Readiness") {
  static readonly layer = Layer.effect(
    Readiness,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* JobQueue
      const expectedMigrations = (yield* sqlFileLoader).length

      const database = sql<{ applied: bigint }>`select count(*) as applied from effect_sql_migrations`.pipe(
        Effect.map((rows) => (Number(rows[0]?.applied ?? 0) >= expectedMigrations ? "ok" as const : "migrations pending" as const)),
        Effect.timeout(checkTimeout),
        Effect.orElseSucceed(() => "unreachable" as const)
      )
      const jobs = queue.ping.pipe(
        Effect.as("ok" as const),
        Effect.timeout(checkTimeout),
        Effect.orElseSucceed(() => "unreachable" as const)
      )
      return Readiness.of({
        check: Effect.all([database, jobs], { concurrency: 2 }).pipe(
          Effect.map(([db, q]) => ({ ready: db === "ok" && q === "ok", database: db, queue: q })),
          Effect.withSpan("Readiness.check")
        )
      })
    })
  )
}
