import { AllProgram } from "../layers/Programs.ts"
import { runProgram } from "./run.ts"

runProgram(AllProgram)
