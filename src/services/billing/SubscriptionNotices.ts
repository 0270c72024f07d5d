import { Context, Effect, Layer, Option } from "effect"
import type { SubscriptionStatus } from "./Entitlement.ts"
import { Notices } from "../chat/Notices.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import type { UrlButton } from "../telegram/Telegram.ts"
import { billingTexts, formatDate, formatMoney, noticeText, refundText } from "./BillingTexts.ts"
import { type NoticeKind, noticeFor } from "./Entitlement.ts"
import type { SubscriptionState } from "./Subscriptions.ts"

/** What a user is told about their subscription and money, each thing once (in the caller's transaction). */
export class SubscriptionNotices extends Context.Service<SubscriptionNotices, {
  /**
   * The notice a change of status calls for (Entitlement.noticeFor), with the link to act on it;
   * its kind, and the chat to wake (None when told before or the user has no chat with the bot).
   */
  readonly notice: (
    state: SubscriptionState,
    before: SubscriptionStatus | undefined
  ) => Effect.Effect<Option.Option<{ readonly kind: NoticeKind; readonly chat: Option.Option<number> }>, StorageOutage>
  /** Tells the user about a refund of `cents` in `currency`, once per `key`; the chat to wake. */
  readonly refund: (userId: number, key: string, cents: number, currency: string) => Effect.Effect<Option.Option<number>, StorageOutage>
}>()("bot/SubscriptionNotices") {
  static readonly layer = Layer.effect(
    SubscriptionNotices,
    Effect.gen(function*() {
      const notices = yield* Notices
      const { billingTimezone } = yield* AppConfig
      const date = (value: Date | null) => (value === null ? undefined : formatDate(value, billingTimezone))

      return SubscriptionNotices.of({
        notice: Effect.fn("SubscriptionNotices.notice")(function*(state: SubscriptionState, before: SubscriptionStatus | undefined) {
          const kind = noticeFor(before, state.status)
          if (kind === undefined) return Option.none()
          const fixCard = (kind === "payment_failed" || kind === "unpaid") && state.updatePaymentUrl !== null
          const buttons: ReadonlyArray<UrlButton> = fixCard ? [{ text: billingTexts.updatePaymentButton, url: state.updatePaymentUrl! }] : []
          // Activation is told once per subscription; the other changes once per state.
          const at = kind === "activated" ? "" : `:${state.providerUpdatedAt.toISOString()}`
          const chat = yield* notices.add({
            userId: state.userId,
            key: `${state.provider}:${state.providerSubscriptionId}:${kind}${at}`,
            text: noticeText(kind, { endsAt: date(state.endsAt), renewsAt: date(state.renewsAt) }),
            buttons
          })
          return Option.some({ kind, chat })
        }),
        refund: Effect.fn("SubscriptionNotices.refund")(function*(userId: number, key: string, cents: number, currency: string) {
          return yield* notices.add({ userId, key: `refund:${key}`, text: refundText(formatMoney(cents, currency)), buttons: [] })
        })
      })
    })
  )
}
