"""A Hub client process for the hub tests: runs Python snippets sent as JSON lines on stdin.

huggingface_hub and datasets read ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_XET`` and the
cache paths once, at import. The test process imported them with ``HF_HUB_OFFLINE=1``, so the real
clients run here instead, in a process started with the test hub's environment; it imports the heavy
libraries once for the whole session. Protocol: one request per line, ``{"code": str, "vars": {...}}``;
the snippet sets ``result`` (JSON-serialisable); one reply per line, ``{"ok": bool, "result": ...,
"error": str, "output": str}``. An empty line or EOF ends the process.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import sys
import traceback


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    import datasets  # noqa: F401  (import once, before the first request)
    import huggingface_hub  # noqa: F401

    import synthxray  # noqa: F401
    import synthxray.generators.ddpm  # noqa: F401
    import synthxray.hub  # noqa: F401
    from diffusers import StableDiffusionPipeline  # noqa: F401  (slow lazy imports, paid once)

    out = sys.stdout
    out.write(json.dumps({"ok": True, "result": "ready", "cpu_seconds": round(_cpu(), 2)}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            break
        request = json.loads(line)
        namespace: dict = {"__name__": "__hub_client__", **request.get("vars", {})}
        captured = io.StringIO()
        started = _cpu()
        reply: dict
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                exec(compile(request["code"], "<hub test snippet>", "exec"), namespace)
            reply = {"ok": True, "result": namespace.get("result")}
        except BaseException as exc:  # report everything, keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        reply["output"] = captured.getvalue()[-20000:]
        reply["cpu_seconds"] = round(_cpu() - started, 2)
        try:
            text = json.dumps(reply, default=str)
        except (TypeError, ValueError) as exc:
            text = json.dumps({"ok": False, "error": f"result is not JSON-serialisable: {exc}", "output": reply["output"]})
        out.write(text + "\n")
        out.flush()


if __name__ == "__main__":
    main()
