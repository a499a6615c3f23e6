"""Wall time and peak memory of the quick commands (checking data, listing and evaluating runs, plotting
curves), which should not pay for importing torch.

Usage::

    python benchmarks/command_latency.py RUN [--src SRC ...] [--repeat 3]

``RUN`` is a finished classification run folder (e.g. ``runs/demo/finetune`` after ``mulsupcon demo``);
its own CSV is written next to the output for ``datasets check``. Each command runs in a fresh process
per source tree named by ``--src`` (default: this checkout's ``src``), best of ``--repeat``, so that an
old tree (``git worktree add /tmp/old REV``) and this one are measured side by side in one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The command in the child, which then prints its own peak resident memory (KB) as its last line of stderr.
CHILD = """
import resource, runpy, sys
sys.argv = ["mulsupcon", *sys.argv[1:]]
try:
    runpy.run_module("mulsupcon", run_name="__main__")
except SystemExit as e:
    if e.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a finished classification run folder")
    ap.add_argument("--src", nargs="+", default=[str(HERE.parent / "src")], help="source trees to compare")
    ap.add_argument("--repeat", type=int, default=3, help="runs per command; the best is reported")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="latency-"))
    csv = tmp / "d.csv"
    csv.write_text("a,b,c,y1,y2\n" + "".join(f"{i},{i % 7},{i % 3},{i % 2},{int(i % 5 == 0)}\n" for i in range(300)))
    commands = {
        "datasets check (300-row CSV)": ["datasets", "check", "--dataset.path", str(csv), "--dataset.label_columns", "2"],
        "runs": ["runs", str(Path(args.run).parent)],
        "evaluate RUN": ["evaluate", args.run],
        "plot curves RUN": ["plot", "curves", args.run, "--out", str(tmp / "c.png")],
    }
    print("| command | source | best wall s | peak memory MB |")
    print("|---|---|---|---|")
    for name, command in commands.items():
        for src in args.src:
            env = dict(os.environ, PYTHONPATH=src)
            best, peak = float("inf"), 0.0
            for _ in range(args.repeat):
                t = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", CHILD, *command], env=env, check=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                best = min(best, time.perf_counter() - t)
                peak = max(peak, int(done.stderr.strip().splitlines()[-1]) / 1024)
            print(f"| {name} | {src} | {best:.2f} | {peak:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
