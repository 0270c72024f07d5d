import type { UrlButton } from "../telegram/Telegram.ts"
import type { NoticeKind, Plan } from "./Entitlement.ts"

/** A reply: its text (Markdown) and the buttons under it. */
export interface BillingReply {
  readonly text: string
  readonly buttons: ReadonlyArray<UrlButton>
}

/** A date as people read it, in the billing time zone: "19 December 2026". */
export const formatDate = (date: Date, timeZone: string): string =>
  new Intl.DateTimeFormat("en-GB", { dateStyle: "long", timeZone }).format(date)

/** An amount in cents with its currency: "€4.99", "PLN 670.28". */
export const formatMoney = (cents: number, currency: string): string =>
  new Intl.NumberFormat("en-GB", { style: "currency", currency }).format(cents / 100)

export const planNames: Record<Plan, string> = {
  free: "Free",
  promo: "Promo (its price for life)",
  standard: "Standard"
}

/** A plan's price as LemonSqueezy has it: cents, currency, billing interval. */
export interface Price {
  readonly cents: number
  readonly currency: string
  readonly interval: string
}

const messages = (n: number) => (n === 1 ? "free message" : `${n} free messages`)

/** What the bot says about money, subscriptions and limits. */
export const billingTexts = {
  paywall: (limit: number) =>
    `You've used today's ${messages(limit)}. Subscribe for unlimited messages, or come back tomorrow.`,
  paywallNoCheckout: (limit: number) =>
    `You've used today's ${messages(limit)}. Subscribing isn't possible right now: please try /subscribe in a few minutes, or come back tomorrow.`,
  paywallBillingOff: (limit: number, zone: string) =>
    `You've used today's ${messages(limit)}. More tomorrow, from midnight (${zone} time).`,
  fairUse: (limit: number, zone: string) =>
    `You've reached today's fair-use limit of ${limit} messages. It starts again at midnight (${zone} time).`,
  billingOff: "Subscriptions are not available here.",
  subscribe: (plan: Exclude<Plan, "free">, price: Price | undefined) => {
    const cost = price ? ` for ${formatMoney(price.cents, price.currency)} a ${price.interval}` : ""
    return plan === "promo"
      ? `Subscribe${cost}, for life: you're among the first subscribers. Unlimited messages (fair use).`
      : `Subscribe${cost}: unlimited messages (fair use).`
  },
  checkoutUnavailable: "Subscribing isn't possible right now. Please try again in a few minutes.",
  alreadySubscribed: "You're subscribed already. You can change your card or cancel in the customer portal.",
  cancelledUntil: (date: string) =>
    `Your subscription is cancelled: you keep access until ${date}. You can resume it in the customer portal.`,
  onHold: "Your subscription is on hold. Resume it, or update your payment method, in the customer portal.",
  /** In a group: billing happens in a private chat with the bot (links there are personal). */
  inPrivate: "Let's talk about that in a private chat: tap the button.",
  paywallInGroup: (limit: number) =>
    `You've used today's ${messages(limit)}. To subscribe, open a private chat with me.`,
  subscribeButton: "Subscribe",
  privateChatButton: "Open a private chat",
  portalButton: "Manage subscription",
  updatePaymentButton: "Update payment method",
  account: (lines: ReadonlyArray<string>) => lines.join("\n")
} as const

/** The notice for a subscription's change, with what the holder may need to act on it. */
export const noticeText = (
  kind: NoticeKind,
  details: { readonly endsAt: string | undefined; readonly renewsAt: string | undefined }
): string => {
  switch (kind) {
    case "activated":
      return "Thank you! Your subscription is active: you can send me as many messages as you like (fair use)."
    case "payment_failed":
      return "Your subscription's payment didn't go through. You keep access while we retry: please update your payment method."
    case "recovered":
      return "Your payment went through. Thank you: your subscription continues."
    case "cancelled":
      return details.endsAt
        ? `Your subscription is cancelled. You keep access until ${details.endsAt}. You can resume it any time before then.`
        : "Your subscription is cancelled."
    case "resumed":
      return details.renewsAt
        ? `Your subscription is back on. It renews on ${details.renewsAt}.`
        : "Your subscription is back on."
    case "paused":
      return "Your subscription is paused: you're on the free plan until it resumes."
    case "unpaid":
      return "We couldn't collect your subscription's payment, so it's on hold. Update your payment method to get it back."
    case "expired":
      return "Your subscription has ended: you're back on the free plan. /subscribe starts a new one."
  }
}

/** The notice for a refund of `amount`. */
export const refundText = (amount: string) => `You've been refunded ${amount}.`
