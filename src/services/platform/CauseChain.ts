/**
 * An error with the errors it wraps (`cause`, as fetch and the SDKs nest them), in one line:
 * "Connection error.: fetch failed: connect ECONNREFUSED 127.0.0.1:9". A log line then names
 * the host, the code or the status, not only the outermost "Connection error.".
 */
export const causeChain = (error: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = error
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const message = current instanceof Error ? current.message : String(current)
    const code = (current as { code?: unknown }).code
    const part = typeof code === "string" && !message.includes(code) ? `${message} (${code})` : message
    if (part !== "" && !parts.includes(part)) parts.push(part)
    current = current instanceof Error ? current.cause : undefined
  }
  return parts.join(": ")
}
