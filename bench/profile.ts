/**
 * Reads the V8 CPU profiles (.cpuprofile) that `node --cpu-prof` wrote into a folder and sums
 * them up as text: busy vs idle time, self time by package (node_modules/<pkg>, src/<file>, Node
 * internals, GC), inclusive time by source file of the project, and the top functions by self time.
 *
 * Also runnable on its own: `node bench/profile.ts DIR`.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const special = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"])

/** Where a frame's code lives: "effect", "@effect/sql-pg", "src/services/chat/Inbox.ts", "node:internal", ... */
export const packageOf = (frame: CallFrame): string => {
  if (special.has(frame.functionName)) return frame.functionName
  const url = frame.url
  if (url === "") return "(native / V8 builtins)"
  if (url.startsWith("node:")) return "node: internals"
  const modules = url.lastIndexOf("/node_modules/")
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/")
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? url)
  }
  const src = url.indexOf("/src/")
  if (src >= 0) return url.slice(src + 1)
  const test = url.indexOf("/test/")
  if (test >= 0) return url.slice(test + 1)
  return url.replace(/^file:\/\//, "")
}

const share = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)}%`

/**
 * `units` (e.g. requests answered while profiling) adds a "us per unit" column. Note: the V8
 * profiler samples wall time of the thread while it is not idle, so a syscall during which the
 * thread was preempted (a loopback write waking Postgres on the same core) counts in full.
 */
export const summarizeProfile = (dir: string, units?: { readonly count: number; readonly name: string }, top = 25): string => {
  const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))
  if (files.length === 0) return `(no .cpuprofile in ${dir})`
  const selfByFunction = new Map<string, number>()
  const selfByPackage = new Map<string, number>()
  const inclusiveBySrc = new Map<string, number>()
  const selfByCaller = new Map<string, number>()
  let busy = 0
  let idle = 0
  for (const file of files) {
    const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile
    const byId = new Map(profile.nodes.map((n) => [n.id, n]))
    const parent = new Map<number, number>()
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
    // The set of project files on each node's stack, computed once per node.
    const srcOnStack = new Map<number, ReadonlySet<string>>()
    const srcFiles = (id: number): ReadonlySet<string> => {
      const known = srcOnStack.get(id)
      if (known) return known
      const node = byId.get(id)
      const up = parent.get(id)
      const set = new Set(up === undefined ? [] : srcFiles(up))
      const where = node ? packageOf(node.callFrame) : ""
      if (where.startsWith("src/")) set.add(where)
      srcOnStack.set(id, set)
      return set
    }
    // The nearest frame up the stack that is neither Node's own JavaScript nor a V8 builtin.
    const callerOf = new Map<number, string>()
    const caller = (id: number): string => {
      const known = callerOf.get(id)
      if (known !== undefined) return known
      const node = byId.get(id)
      const where = node ? packageOf(node.callFrame) : "(unknown)"
      const up = parent.get(id)
      const result = where !== "node: internals" && where !== "(native / V8 builtins)" ? where : up === undefined ? where : caller(up)
      callerOf.set(id, result)
      return result
    }
    profile.samples.forEach((id, i) => {
      const micros = profile.timeDeltas[i] ?? 0
      const node = byId.get(id)
      if (!node) return
      const frame = node.callFrame
      if (frame.functionName === "(idle)") {
        idle += micros
        return
      }
      busy += micros
      const where = packageOf(frame)
      selfByPackage.set(where, (selfByPackage.get(where) ?? 0) + micros)
      const charged = caller(id)
      selfByCaller.set(charged, (selfByCaller.get(charged) ?? 0) + micros)
      const name = `${frame.functionName || "(anonymous)"} ${where}${frame.url === "" ? "" : `:${frame.lineNumber + 1}`}`
      selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + micros)
      for (const src of srcFiles(id)) inclusiveBySrc.set(src, (inclusiveBySrc.get(src) ?? 0) + micros)
    })
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1])
  const lines: Array<string> = []
  const perUnit = (micros: number) => (units === undefined ? "" : `${(micros / units.count).toFixed(1).padStart(7)} us/${units.name}  `)
  const row = (micros: number, label: string) => `  ${share(micros, busy).padStart(6)}  ${perUnit(micros)}${label}`
  lines.push(
    `busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s (${files.length} profile file(s))` +
      (units === undefined ? "" : `, ${units.count} ${units.name}s: ${(busy / units.count).toFixed(0)} us busy per ${units.name}`) +
      "; shares are of busy time"
  )
  lines.push("", "self time by package / file:")
  for (const [where, micros] of sorted(selfByPackage).slice(0, 15)) lines.push(row(micros, where))
  lines.push("", "self time with Node internals and V8 builtins charged to the package that called them:")
  for (const [where, micros] of sorted(selfByCaller).slice(0, 15)) lines.push(row(micros, where))
  lines.push("", "inclusive time by project file (a sample counts once per file on its stack):")
  for (const [where, micros] of sorted(inclusiveBySrc).slice(0, 12)) lines.push(row(micros, where))
  lines.push("", `top ${top} functions by self time:`)
  for (const [name, micros] of sorted(selfByFunction).slice(0, top)) lines.push(row(micros, name))
  return lines.join("\n")
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2]
  if (dir === undefined) throw new Error("usage: node bench/profile.ts DIR")
  process.stdout.write(`${summarizeProfile(dir)}\n`)
}
