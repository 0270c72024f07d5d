import { Clock, Context, Effect, Layer, Option } from "effect"
import { AppConfig } from "../platform/AppConfig.ts"
import type { RedisOutage } from "../platform/Redis.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import { Admission } from "./Admission.ts"
import { isBlank, parseCommand } from "./ChatTexts.ts"
import { type Mail, Mailbox, type MailboxError } from "./Mailbox.ts"

/**
 * Telegram splits a paste longer than 4096 characters into several messages sent a moment
 * apart: a burst ending with one this long may still grow, so it waits out BURST_MERGE_MS.
 */
const splitLength = 4000

/** Whether a message may be answered together with the ones after it. */
const mergeable = (mail: Mail) =>
  mail.kind === "user" && mail.attachment === null && !isBlank(mail.text) && parseCommand(mail.text) === undefined

/**
 * Several quick messages of one sender answered as one (BURST_MERGE_MS): a long paste Telegram
 * split, or a burst typed while the previous answer streamed.
 */
export class Bursts extends Context.Service<Bursts, {
  /**
   * The mail (already admitted to the LLM) with the messages that followed it within
   * BURST_MERGE_MS of each other merged in, in order: each one admitted on its own (counted in
   * the quota and the LLM rate limit), and merged only when admitted; the first that is not (a
   * command, an attachment, another sender, over a limit) ends the burst and keeps its own turn.
   */
  readonly gather: (mail: Mail) => Effect.Effect<Mail, MailboxError | StorageOutage | RedisOutage>
}>()("bot/Bursts") {
  static readonly layer = Layer.effect(
    Bursts,
    Effect.gen(function*() {
      const { burstMergeMs } = yield* AppConfig
      const mailbox = yield* Mailbox
      const admission = yield* Admission

      /** The next message merged into `head` (the merged head and that message), or None when the burst ends. */
      const next = (head: Mail) =>
        Effect.gen(function*() {
          const claimed = yield* mailbox.claimFollower(head, burstMergeMs)
          if (Option.isNone(claimed)) return Option.none<readonly [Mail, Mail]>()
          const follower = claimed.value
          // Its own turn answers it (with the decision stored, if one was made): handed back
          // uncounted when it is not merged, whatever stopped it (an outage, a shutdown).
          const handBack = mailbox.release(follower, { countAttempt: false })
          return yield* Effect.gen(function*() {
            const admitted = mergeable(follower) ? yield* admission.admit(follower) : undefined
            if (admitted?._tag !== "Llm") {
              yield* handBack
              return Option.none<readonly [Mail, Mail]>()
            }
            return Option.some([yield* mailbox.merge(head, follower), follower] as const)
          }).pipe(Effect.onError(() => Effect.ignore(handBack)))
        })

      return Bursts.of({
        gather: Effect.fn("Bursts.gather")(function*(mail: Mail) {
          if (burstMergeMs === 0 || !mergeable(mail)) return mail
          let head = mail
          // A redo's mail may hold merged texts already: its whole text stands for the last part.
          let last = mail
          let waited = false
          while (true) {
            // Nothing came after the last part when it was claimed: no query for what would not be there.
            const merged = last.laterPending || waited ? yield* next(head) : Option.none<readonly [Mail, Mail]>()
            if (Option.isSome(merged)) {
              ;[head, last] = merged.value
              continue
            }
            const lastPart = last.text
            // A split paste's next part may be a moment away: wait for it once.
            const waitMillis = head.lastReceivedAt + burstMergeMs - (yield* Clock.currentTimeMillis)
            if (waited || lastPart.length < splitLength || waitMillis <= 0) return head
            waited = true
            yield* Effect.sleep(Math.min(waitMillis, burstMergeMs))
          }
        })
      })
    })
  )
}
