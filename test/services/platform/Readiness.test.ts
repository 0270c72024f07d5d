import { assert, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { JobQueue } from "../../../src/services/platform/JobQueue.ts"
import { Migrations } from "../../../src/services/platform/Migrations.ts"
import { Readiness } from "../../../src/services/platform/Readiness.ts"

/** A database that counts how often it is asked, and a queue that always answers. */
const counted = () => {
  const asked = { database: 0, queue: 0 }
  const layer = Readiness.layer.pipe(
    Layer.provide(Layer.succeed(Migrations, Migrations.of({ expected: 5, applied: Effect.sync(() => (asked.database += 1, 5)) } as never))),
    Layer.provide(Layer.succeed(JobQueue, JobQueue.of({ ping: Effect.sync(() => void (asked.queue += 1)) } as never)))
  )
  return { asked, layer }
}

it.effect("a flood of /ready probes costs one check a second", () => {
  const { asked, layer } = counted()
  return Effect.gen(function*() {
    const readiness = yield* Readiness
    const reports = yield* Effect.all(Array.from({ length: 200 }, () => readiness.check), { concurrency: "unbounded" })
    assert.isTrue(reports.every((r) => r.ready && r.database === "ok" && r.queue === "ok"))
    assert.deepStrictEqual(asked, { database: 1, queue: 1 })
    yield* TestClock.adjust("999 millis")
    yield* readiness.check
    assert.deepStrictEqual(asked, { database: 1, queue: 1 })
    yield* TestClock.adjust("1 millis")
    yield* readiness.check
    assert.deepStrictEqual(asked, { database: 2, queue: 2 })
  }).pipe(Effect.provide(layer))
})
