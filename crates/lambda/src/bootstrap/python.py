# tresor's Lambda bootstrap for Python runtimes: reads one invocation request (JSON) from
# stdin, imports the handler from LAMBDA_TASK_ROOT, calls it with the event and a context
# object, and writes one result line "<marker> <json>" to the original stdout. The function's
# own output (print, logging) goes to stderr, which tresor keeps as the invocation's log.
import importlib
import json
import os
import sys
import time
import traceback


class LambdaContext:
    def __init__(self, c):
        self.aws_request_id = c["aws_request_id"]
        self.function_name = c["function_name"]
        self.function_version = c["function_version"]
        self.invoked_function_arn = c["invoked_function_arn"]
        # The Python runtime passes the memory size as the string of its variable.
        self.memory_limit_in_mb = c["memory_limit_in_mb"]
        self.log_group_name = c["log_group_name"]
        self.log_stream_name = c["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = c["deadline_ms"]

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def main():
    result_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    marker = request["marker"]

    def emit(kind, value):
        result_out.write(marker + " " + json.dumps({kind: value}) + "\n")
        result_out.flush()

    def fail(error_type, message, trace):
        emit("error", {"errorMessage": message, "errorType": error_type, "stackTrace": trace})

    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path.insert(0, task_root)
    handler = os.environ["_HANDLER"]
    module_name, _, function_name = handler.rpartition(".")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - reported to the caller as Lambda does
        message = "Unable to import module '%s': %s" % (module_name, e)
        print("[ERROR] Runtime.ImportModuleError: " + message, file=sys.stderr)
        fail("Runtime.ImportModuleError", message, [])
        return
    function = getattr(module, function_name, None)
    if function is None:
        message = "Handler '%s' missing on module '%s'" % (function_name, module_name)
        print("[ERROR] Runtime.HandlerNotFound: " + message, file=sys.stderr)
        fail("Runtime.HandlerNotFound", message, [])
        return
    context = LambdaContext(request["context"])
    try:
        result = function(request["event"], context)
    except Exception as e:  # noqa: BLE001
        trace = traceback.format_tb(e.__traceback__)[1:]
        print("[ERROR] %s: %s" % (type(e).__name__, e), file=sys.stderr)
        print("Traceback (most recent call last):\n" + "".join(trace), end="", file=sys.stderr)
        fail(type(e).__name__, str(e), trace)
        return
    try:
        json.dumps(result)
    except (TypeError, ValueError) as e:
        fail("Runtime.MarshalError", "Unable to marshal response: %s" % e, [])
        return
    sys.stderr.flush()
    emit("result", result)


main()
