import { assert, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { TurnStarts, turnsGettingReady } from "../../../src/services/chat/TurnStarts.ts"

/** `count` turns that note when they got their place, then wait to be told to be ready. */
const startTurns = (count: number) =>
  Effect.gen(function*() {
    const starts = yield* TurnStarts
    const entered: Array<number> = []
    const goAhead = yield* Effect.forEach(Array.from({ length: count }), () => Deferred.make<void>())
    const fibers = yield* Effect.forEach(goAhead, (go, i) =>
      Effect.forkChild(starts.run(Effect.gen(function*() {
        entered.push(i)
        yield* Deferred.await(go)
        yield* starts.ready
        yield* starts.ready // a second time gives back nothing more
        return i
      }))))
    yield* Effect.yieldNow
    return { entered, goAhead, fibers }
  })

it.effect("lets turnsGettingReady turns get ready at once, the others in the order they came", () =>
  Effect.gen(function*() {
    const { entered, fibers, goAhead } = yield* startTurns(turnsGettingReady + 3)
    assert.deepStrictEqual(entered, Array.from({ length: turnsGettingReady }, (_, i) => i))
    // The fifth turn is ready: the next in line gets its place, not a later one.
    yield* Deferred.succeed(goAhead[4]!, undefined)
    yield* Fiber.join(fibers[4]!)
    yield* Effect.yieldNow
    assert.deepStrictEqual(entered.slice(turnsGettingReady), [turnsGettingReady])
    for (const go of goAhead) yield* Deferred.succeed(go, undefined)
    assert.deepStrictEqual(yield* Fiber.joinAll(fibers), Array.from({ length: turnsGettingReady + 3 }, (_, i) => i))
  }).pipe(Effect.provide(TurnStarts.layer)))

it.effect("gives the place back when a turn ends or fails without saying it is ready, and when one waiting for a place is interrupted", () =>
  Effect.gen(function*() {
    const starts = yield* TurnStarts
    yield* starts.ready // outside a turn: nothing
    yield* Effect.forEach(Array.from({ length: turnsGettingReady }), () => starts.run(Effect.fail("no")).pipe(Effect.ignore))
    const { entered, fibers, goAhead } = yield* startTurns(turnsGettingReady + 1)
    assert.strictEqual(entered.length, turnsGettingReady, "every place is free again")
    yield* Fiber.interrupt(fibers[turnsGettingReady]!) // waiting: leaves the line
    for (const go of goAhead) yield* Deferred.succeed(go, undefined)
    yield* Effect.forEach(fibers.slice(0, turnsGettingReady), Fiber.join)
    const { entered: again } = yield* startTurns(turnsGettingReady)
    assert.strictEqual(again.length, turnsGettingReady)
  }).pipe(Effect.provide(TurnStarts.layer)))
