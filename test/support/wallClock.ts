import { Clock, Effect } from "effect"

/**
 * Runs `effect` with a wall clock that reads `at` (epoch ms) plus the real time gone by since,
 * while sleeps and timeouts keep real time. For rules of the calendar (quota days, rate-limit
 * windows) checked against real Postgres, whose client must not see virtual time jump ahead.
 */
export const atWallTime = (at: number) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.clockWith((live) => {
    const offset = at - live.currentTimeMillisUnsafe()
    const nanos = BigInt(offset) * 1_000_000n
    const shifted: Clock.Clock = {
      currentTimeMillisUnsafe: () => live.currentTimeMillisUnsafe() + offset,
      currentTimeMillis: Effect.sync(() => live.currentTimeMillisUnsafe() + offset),
      currentTimeNanosUnsafe: () => live.currentTimeNanosUnsafe() + nanos,
      currentTimeNanos: Effect.sync(() => live.currentTimeNanosUnsafe() + nanos),
      monotonicTimeNanosUnsafe: () => live.monotonicTimeNanosUnsafe(),
      monotonicTimeNanos: live.monotonicTimeNanos,
      sleep: (duration) => live.sleep(duration)
    }
    return Effect.provideService(effect, Clock.Clock, shifted)
  })
