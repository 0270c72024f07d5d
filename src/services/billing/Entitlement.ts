/**
 * Who may use the bot how much, whatever the payment provider (LemonSqueezy now, Telegram Stars
 * later): a plan, and whether a subscription's status entitles its holder to it.
 */
export type Plan = "free" | "promo" | "standard"

/** A subscription's status, in the bot's words (LemonSqueezy's are the same; other providers map to them). */
export type SubscriptionStatus = "on_trial" | "active" | "paused" | "past_due" | "unpaid" | "cancelled" | "expired"

/**
 * Entitled: on_trial, active, past_due (renewal failed, retried for about two weeks: grace) and
 * cancelled until `ends_at`. Not entitled: paused, unpaid, expired (LemonSqueezy's statuses).
 */
export const isEntitled = (status: SubscriptionStatus, endsAt: Date | null, now: Date): boolean =>
  status === "on_trial" || status === "active" || status === "past_due" ||
  (status === "cancelled" && endsAt !== null && endsAt.getTime() > now.getTime())

/** What a change of a subscription's status is told to its holder as (each once). */
export type NoticeKind = "activated" | "payment_failed" | "recovered" | "cancelled" | "resumed" | "paused" | "unpaid" | "expired"

/** The notice for a subscription going from `before` (undefined: new to us) to `after`, if any. */
export const noticeFor = (before: SubscriptionStatus | undefined, after: SubscriptionStatus): NoticeKind | undefined => {
  if (before === after) return undefined
  switch (after) {
    case "on_trial":
    case "active":
      return before === "past_due" || before === "unpaid"
        ? "recovered"
        : before === "cancelled" || before === "paused"
        ? "resumed"
        : before === "on_trial" || before === "active"
        ? undefined
        : "activated"
    case "past_due":
      return "payment_failed"
    case "cancelled":
      return "cancelled"
    case "paused":
      return "paused"
    case "unpaid":
      return "unpaid"
    case "expired":
      return "expired"
  }
}

/**
 * Today in `timeZone` (an IANA zone), as YYYY-MM-DD: quotas count per day of BILLING_TIMEZONE.
 * `now` is epoch ms.
 */
export const quotaDay = (now: number, timeZone: string): string => dayFormat(timeZone).format(now)

// A formatter costs about 0.14 ms to make (ICU) and every turn asks for the day: one per zone
// (the zones are the settings', so few).
const dayFormats = new Map<string, Intl.DateTimeFormat>()
const dayFormat = (timeZone: string) => {
  let format = dayFormats.get(timeZone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
    dayFormats.set(timeZone, format)
  }
  return format
}
