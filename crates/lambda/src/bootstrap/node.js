// tresor's Lambda bootstrap for Node.js runtimes: reads one invocation request (JSON) from
// stdin, loads the handler module from LAMBDA_TASK_ROOT (CommonJS or ES module), calls the
// handler (async, promise or callback style) with the event and a context object, and writes
// one result line "<marker> <json>" to fd 1. console output goes to stderr, which tresor keeps
// as the invocation's log.
"use strict";
const fs = require("fs");
const path = require("path");
const url = require("url");

const toStderr = (...args) => process.stderr.write(require("util").format(...args) + "\n");
console.log = console.info = console.debug = console.warn = console.error = console.trace = toStderr;
const writeResult = (marker, obj) => fs.writeSync(1, marker + " " + JSON.stringify(obj) + "\n");
process.stdout.write = process.stderr.write.bind(process.stderr);

function errorPayload(err) {
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: err.message,
      trace: String(err.stack || "").split("\n"),
    };
  }
  return { errorType: "string", errorMessage: String(err), trace: [] };
}

async function loadModule(taskRoot, modulePath) {
  const base = path.resolve(taskRoot, modulePath);
  for (const ext of [".js", ".mjs", ".cjs"]) {
    const file = base + ext;
    if (fs.existsSync(file)) {
      if (ext === ".mjs") {
        return await import(url.pathToFileURL(file).href);
      }
      try {
        return require(file);
      } catch (e) {
        if (e && e.code === "ERR_REQUIRE_ESM") {
          return await import(url.pathToFileURL(file).href);
        }
        throw e;
      }
    }
  }
  const e = new Error("Cannot find module '" + modulePath + "'");
  e.name = "Runtime.ImportModuleError";
  throw e;
}

async function main() {
  const request = JSON.parse(fs.readFileSync(0, "utf8"));
  const marker = request.marker;
  const c = request.context;
  const context = {
    awsRequestId: c.aws_request_id,
    functionName: c.function_name,
    functionVersion: c.function_version,
    invokedFunctionArn: c.invoked_function_arn,
    memoryLimitInMB: c.memory_limit_in_mb,
    logGroupName: c.log_group_name,
    logStreamName: c.log_stream_name,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(Math.floor(c.deadline_ms - Date.now()), 0),
  };
  const handler = process.env._HANDLER;
  const dot = handler.lastIndexOf(".");
  const modulePath = handler.slice(0, dot);
  const name = handler.slice(dot + 1);
  let mod;
  try {
    mod = await loadModule(process.env.LAMBDA_TASK_ROOT, modulePath);
  } catch (e) {
    const p = errorPayload(e);
    p.errorType = "Runtime.ImportModuleError";
    p.errorMessage = "Error: " + (e && e.message ? e.message : String(e));
    console.error("ERROR", JSON.stringify(p));
    writeResult(marker, { error: p });
    process.exit(0);
  }
  const fn = mod[name] || (mod.default && mod.default[name]);
  if (typeof fn !== "function") {
    const p = {
      errorType: "Runtime.HandlerNotFound",
      errorMessage: modulePath + "." + name + " is undefined or not exported",
      trace: [],
    };
    console.error("ERROR", JSON.stringify(p));
    writeResult(marker, { error: p });
    process.exit(0);
  }
  try {
    let result;
    if (fn.length >= 3) {
      result = await new Promise((resolve, reject) => {
        const r = fn(request.event, context, (err, value) => (err ? reject(err) : resolve(value)));
        if (r && typeof r.then === "function") r.then(resolve, reject);
      });
    } else {
      result = await fn(request.event, context);
    }
    writeResult(marker, { result: result === undefined ? null : result });
  } catch (e) {
    const p = errorPayload(e);
    console.error("ERROR", "Invoke Error", JSON.stringify(p));
    writeResult(marker, { error: p });
  }
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
