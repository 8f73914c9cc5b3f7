"""Shared by the benchmark scripts: how far a fresh process's peak resident memory rises
while it runs a snippet (Linux: /proc/self/clear_refs and VmHWM)."""

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])

def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

exec(sys.argv[3])  # the setup (imports): not counted
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS: the interpreter's start is not counted
_before = _status("VmRSS")
extra = {}
exec(sys.argv[2])
print(json.dumps({"rss_rise_mb": (_status("VmHWM") - _before) / 1024, **extra}))
"""


def peak_rss_rise(snippet, setup="", env=None):
    """Run `setup` (imports; not counted), then `snippet` (it may fill the dict `extra`)
    in a fresh process where the benchmarks folder (this folder's parent) is importable; returns
    `{"rss_rise_mb": ..., **extra}`."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    done = subprocess.run([sys.executable, "-c", PROBE, os.path.dirname(os.path.dirname(os.path.abspath(__file__))), snippet, setup],
                          capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])
