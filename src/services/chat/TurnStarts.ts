import { Context, Effect, Layer, Semaphore } from "effect"

/**
 * Turns getting ready at once: from the claim of their mail to their LLM request (claim,
 * admission, burst, prompt: a handful of queries) or, without the LLM, to their first send. All
 * at once, a burst's turns queue at the database query by query and reach the LLM late together:
 * with 300 chats at once, the first turns' admission queued behind 300 claims (issue 10). A few
 * at a time, in arrival order, the first reach it first. A long paste waiting for its next part
 * (Bursts, at most BURST_MERGE_MS) keeps its place meanwhile.
 */
export const turnsGettingReady = 16

/** The place a turn holds while it gets ready; given back once. */
interface Place {
  readonly giveBack: Effect.Effect<void>
}
const CurrentPlace = Context.Reference<Place | undefined>("bot/TurnStarts/CurrentPlace", { defaultValue: () => undefined })

/** Who may get a turn ready now (see turnsGettingReady). */
export class TurnStarts extends Context.Service<TurnStarts, {
  /**
   * Runs `effect` (a turn, from its claim) once one of the places is free, first come first
   * served, holding it until `ready` is called inside or `effect` ends.
   */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * The turn is ready: what follows waits on the LLM or on Telegram, not on the database. Gives
   * its place to the next turn; nothing outside `run`, or a second time.
   */
  readonly ready: Effect.Effect<void>
}>()("bot/TurnStarts") {
  static readonly layer = Layer.effect(
    TurnStarts,
    Effect.gen(function*() {
      const places = yield* Semaphore.make(turnsGettingReady)
      const placeTaken = (): Place => {
        let held = true
        return {
          giveBack: Effect.suspend(() => {
            if (!held) return Effect.void
            held = false
            return Effect.asVoid(places.release(1))
          })
        }
      }
      return TurnStarts.of({
        // Waiting for a place can be interrupted (a shutdown); holding one, it is given back however the turn ends.
        run: (effect) =>
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function*() {
              yield* restore(places.take(1))
              const place = placeTaken()
              return yield* restore(Effect.provideService(effect, CurrentPlace, place)).pipe(Effect.ensuring(place.giveBack))
            })
          ),
        ready: Effect.gen(function*() {
          const place = yield* CurrentPlace
          if (place !== undefined) yield* place.giveBack
        })
      })
    })
  )
}
