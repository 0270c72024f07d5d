/**
 * Self-tests of the fake OpenAI server, driven through the real client (the openai SDK).
 */
import OpenAI, { APIUserAbortError, AuthenticationError, RateLimitError } from "openai"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeOpenAI, startFakeOpenAI } from "./FakeOpenAI.ts"

describe("FakeOpenAI through the openai SDK", () => {
  const apiKey = "sk-test"
  let ai: FakeOpenAI
  let client: OpenAI

  beforeAll(async () => {
    ai = await startFakeOpenAI({ apiKey })
    client = new OpenAI({ apiKey, baseURL: `${ai.url}/v1`, maxRetries: 0 })
  })
  afterAll(() => ai.close())
  beforeEach(() => ai.reset())

  it("streams the scripted reply in chunks, then usage", async () => {
    const reply = "Hello from the fake model! 🙂"
    ai.setReply(() => ({ text: reply, chunkSize: 5, chunkDelayMs: 1 }))
    const stream = await client.chat.completions.create({
      model: "gpt-test",
      messages: [
        { role: "system", content: "Be nice" },
        { role: "user", content: "Hi there" }
      ],
      stream: true,
      stream_options: { include_usage: true }
    })
    const deltas: Array<string> = []
    let usage: OpenAI.CompletionUsage | null | undefined
    let finishReason: string | null | undefined
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk")
      expect(chunk.model).toBe("gpt-test")
      const choice = chunk.choices[0]
      if (choice?.delta.content) deltas.push(choice.delta.content)
      if (choice?.finish_reason) finishReason = choice.finish_reason
      if (chunk.usage) usage = chunk.usage
    }
    expect(deltas.join("")).toBe(reply)
    expect(deltas.length).toBe(Math.ceil(Array.from(reply).length / 5))
    expect(finishReason).toBe("stop")
    expect(usage).toEqual({
      prompt_tokens: Math.ceil("Be niceHi there".length / 4),
      completion_tokens: Math.ceil(reply.length / 4),
      total_tokens: Math.ceil("Be niceHi there".length / 4) + Math.ceil(reply.length / 4)
    })
    const [request] = await ai.waitFor((f) => f.requests[0]?.completed === true && f.requests)
    expect(request).toMatchObject({ completed: true, aborted: false, status: 200 })
    expect(request?.body.model).toBe("gpt-test")
  })

  it("answers non-streaming requests with the default echo reply", async () => {
    const completion = await client.chat.completions.create({
      model: "gpt-test",
      messages: [{ role: "user", content: [{ type: "text", text: "ping" }] }]
    })
    expect(completion.object).toBe("chat.completion")
    expect(completion.choices[0]?.message.content).toBe("Echo: ping")
    expect(completion.usage?.completion_tokens).toBe(Math.ceil("Echo: ping".length / 4))
  })

  it("surfaces a 429 with retry-after to the SDK", async () => {
    ai.failNext({ status: 429, retryAfterSeconds: 7 })
    const error = await client.chat.completions
      .create({ model: "gpt-test", messages: [{ role: "user", content: "hi" }], stream: true })
      .then(
        () => undefined,
        (e: unknown) => e
      )
    expect(error).toBeInstanceOf(RateLimitError)
    const rateLimit = error as RateLimitError
    expect(rateLimit.status).toBe(429)
    expect(rateLimit.headers.get("retry-after")).toBe("7")
    expect(rateLimit.code).toBe("rate_limit_exceeded")
    expect(ai.requests).toHaveLength(1)

    // The fault was used up: the next request succeeds.
    const ok = await client.chat.completions.create({ model: "gpt-test", messages: [{ role: "user", content: "x" }] })
    expect(ok.choices[0]?.message.content).toBe("Echo: x")
  })

  it("marks a hung request aborted when the client gives up", async () => {
    ai.failNext({ hang: true })
    const controller = new AbortController()
    const pending = client.chat.completions.create(
      { model: "gpt-test", messages: [{ role: "user", content: "hi" }], stream: true },
      { signal: controller.signal }
    )
    await ai.waitFor((f) => f.requests.length === 1, 2_000)
    controller.abort()
    await expect(pending).rejects.toBeInstanceOf(APIUserAbortError)
    await ai.waitFor((f) => f.requests[0]?.aborted, 2_000)
    expect(ai.requests[0]).toMatchObject({ aborted: true, completed: false })
  })

  it("marks a stream aborted mid-way", async () => {
    ai.setReply(() => ({ text: "x".repeat(200), chunkSize: 2, chunkDelayMs: 20 }))
    const controller = new AbortController()
    const stream = await client.chat.completions.create(
      { model: "gpt-test", messages: [{ role: "user", content: "long" }], stream: true },
      { signal: controller.signal }
    )
    let received = 0
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content) received++
      if (received === 3) break // breaking out of the iterator aborts the request
    }
    await ai.waitFor((f) => f.requests[0]?.aborted, 2_000)
    expect(ai.requests[0]?.completed).toBe(false)
  })

  it("requires the API key when configured with one", async () => {
    const anonymous = new OpenAI({ apiKey: "sk-wrong", baseURL: `${ai.url}/v1`, maxRetries: 0 })
    await expect(
      anonymous.chat.completions.create({ model: "gpt-test", messages: [{ role: "user", content: "hi" }] })
    ).rejects.toBeInstanceOf(AuthenticationError)
  })
})
