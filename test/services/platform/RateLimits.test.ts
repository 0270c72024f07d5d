import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import * as RateLimiterMemory from "../../../src/layers/platform/RateLimiterMemory.ts"
import { RateLimits } from "../../../src/services/platform/RateLimits.ts"
import { testDatabase } from "../../support/Database.ts"
import { atWallTime } from "../../support/wallClock.ts"

const database = testDatabase(
  { RATE_LIMIT_LLM_PER_MINUTE: "2", RATE_LIMIT_LEMON_WEBHOOK_PER_MINUTE: "1" },
  `insert into users (id, first_name) values (1, 'a'), (2, 'b'), (3, 'c');
   insert into rate_limit_overrides (user_id, limit_name, max, reason) values (2, 'llm', 4, 'beta tester')`
)
afterAll(() => database.drop())

const allowed = (decisions: ReadonlyArray<{ readonly allowed: boolean }>) => decisions.map((d) => d.allowed)

layer(RateLimits.layer.pipe(Layer.provide(RateLimiterMemory.layer), Layer.provideMerge(database.layer)), {
  excludeTestServices: true
})(
  "RateLimits (real Postgres for the overrides)",
  (it) => {
    it.effect("applies each user's override instead of the default, and the default to the others", () =>
      Effect.gen(function*() {
        const limits = yield* RateLimits
        assert.deepStrictEqual(allowed(yield* limits.consume("llm", [1, 1, 1])), [true, true, false])
        assert.deepStrictEqual(allowed(yield* limits.consume("llm", [2, 2, 2, 2, 2])), [true, true, true, true, false])
      }).pipe(atWallTime(60_000 * 1000)))

    it.effect("takes an operator's new override within 30 s", () =>
      Effect.gen(function*() {
        const limits = yield* RateLimits
        const start = 60_000 * 2000
        yield* limits.consume("llm", [3]).pipe(atWallTime(start)) // the overrides are read now
        database.query("insert into rate_limit_overrides (user_id, limit_name, max) values (3, 'llm', 0)")
        assert.deepStrictEqual(allowed(yield* limits.consume("llm", [3]).pipe(atWallTime(start + 1000))), [true])
        const [blocked] = yield* limits.consume("llm", [3]).pipe(atWallTime(start + 31_000))
        assert.isFalse(blocked!.allowed)
        assert.strictEqual(blocked!.retryAfterMillis, 60_000) // a limit of 0 never frees up: a window at a time
      }))

    it.effect("limits the LemonSqueezy webhook per address, with no per-user override", () =>
      Effect.gen(function*() {
        const limits = yield* RateLimits
        assert.deepStrictEqual(allowed(yield* limits.consume("lemon_webhook", ["10.0.0.1", "10.0.0.1", "10.0.0.2"])), [true, false, true])
      }).pipe(atWallTime(60_000 * 3000)))
  }
)
