import { Context, Effect, Layer } from "effect"
import { JobQueue } from "./JobQueue.ts"
import { Migrations } from "./Migrations.ts"

/** Each check's longest wait: /ready must answer even when a dependency hangs. */
const checkTimeout = "2 seconds"
/** How long a report is reused: a flood of probes costs the database one query a second (issue 9). */
const reportTtl = "1 second"

export interface ReadinessReport {
  /** Both checks are "ok". */
  readonly ready: boolean
  readonly database: "ok" | "migrations pending" | "unreachable"
  readonly queue: "ok" | "unreachable"
}

/** Whether this process can do its work now: the database reachable and migrated, the queue reachable. */
export class Readiness extends Context.Service<Readiness, {
  /**
   * Both checks at once, each bounded by 2 s, run at most once a second (callers within that
   * second share the report); never fails (a failed check is reported, its cause logged at Debug).
   */
  readonly check: Effect.Effect<ReadinessReport>
}>()("bot/Readiness") {
  static readonly layer = Layer.effect(
    Readiness,
    Effect.gen(function*() {
      const migrations = yield* Migrations
      const queue = yield* JobQueue

      const unreachable = (what: string) => (cause: unknown) =>
        Effect.logDebug("readiness: a dependency is unreachable", { dependency: what }, cause).pipe(Effect.as("unreachable" as const))
      const database = migrations.applied.pipe(
        Effect.map((applied) => (applied >= migrations.expected ? "ok" as const : "migrations pending" as const)),
        Effect.timeout(checkTimeout),
        Effect.catch(unreachable("database"))
      )
      const jobs = queue.ping.pipe(
        Effect.as("ok" as const),
        Effect.timeout(checkTimeout),
        Effect.catch(unreachable("queue"))
      )
      const check = yield* Effect.all([database, jobs], { concurrency: 2 }).pipe(
        Effect.map(([db, q]): ReadinessReport => ({ ready: db === "ok" && q === "ok", database: db, queue: q })),
        Effect.withSpan("Readiness.check"),
        Effect.cachedWithTTL(reportTtl)
      )
      return Readiness.of({ check })
    })
  )
}
