import { Effect, Layer, Option } from "effect"
import { ChatLock } from "../../services/platform/ChatLock.ts"

/** In-process lock for the single-process embedded mode: a set of held chat ids. */
export const layer = Layer.sync(ChatLock, () => {
  const held = new Set<number>()
  return ChatLock.of({
    withLock: Effect.fn("ChatLock.withLock")(function*<A, E, R>(chatId: number, effect: Effect.Effect<A, E, R>) {
      if (held.has(chatId)) return Option.none<A>()
      held.add(chatId)
      return yield* effect.pipe(Effect.map(Option.some), Effect.ensuring(Effect.sync(() => held.delete(chatId))))
    }),
    held: (chatIds) => Effect.sync(() => new Set(chatIds.filter((chatId) => held.has(chatId))))
  })
})
