import { type Duration, Effect, type Schedule } from "effect"
import { TestClock } from "effect/testing"

/**
 * A call that fails with each of `errors` in turn and then succeeds, retried on `schedule` for
 * `within` of virtual time (TestClock): how many times it ran, whether it ended, and how.
 */
export const retried = <E>(schedule: Schedule.Schedule<unknown, E>, errors: ReadonlyArray<E>, within: Duration.Input) =>
  Effect.gen(function*() {
    let calls = 0
    const call = Effect.suspend(() => {
      const error = errors[calls++]
      return error === undefined ? Effect.succeed("done") : Effect.fail(error)
    })
    const fiber = yield* Effect.forkChild(Effect.retry(call, schedule))
    yield* TestClock.adjust(within)
    const exit = fiber.pollUnsafe()
    return { calls, done: exit !== undefined, succeeded: exit?._tag === "Success" }
  })
