import { Duration, Effect, Schedule } from "effect"

/**
 * Exponential backoff from `base`, with jitter, never shorter than what the server asked for
 * (`retryAfterSeconds` of the failure: Telegram's retry_after, HTTP's Retry-After), at most
 * `times` retries. Callers add which failures are worth retrying with `Schedule.while`.
 */
export const retryAfterBackoff = <E>(options: {
  readonly base: Duration.Input
  readonly times: number
  readonly retryAfterSeconds: (error: E) => number | undefined
}) =>
  Schedule.exponential(options.base).pipe(
    Schedule.jittered,
    Schedule.modifyDelay(({ duration, input }: { input: E; duration: Duration.Duration }) => {
      const after = options.retryAfterSeconds(input)
      return Effect.succeed(after === undefined ? duration : Duration.max(Duration.seconds(after), duration))
    }),
    Schedule.upTo({ times: options.times })
  )
