/**
 * What Postgres can hold, for every string from outside (Telegram, the LLM, LemonSqueezy) before
 * it is stored: `text` cannot hold U+0000, and `jsonb` refuses it and lone surrogates. Either
 * would fail the statement, and a redo would fail again (paying the LLM each time). Everything
 * else is kept as sent; a lone surrogate becomes U+FFFD.
 */
export const storable = (text: string): string => text.toWellFormed().replaceAll("\u0000", "")

export const storableOrNull = (text: string | null | undefined): string | null =>
  text === null || text === undefined ? null : storable(text)

/** `value` with every string in it (keys included) made storable, for a jsonb column. */
export const storableJson = (value: unknown): unknown => {
  if (typeof value === "string") return storable(value)
  if (Array.isArray(value)) return value.map(storableJson)
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [storable(key), storableJson(inner)]))
  }
  return value
}
