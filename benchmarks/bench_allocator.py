"""glibc's allocator and the model's forward: the same batched calls with and without
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, side by side.

Each setting runs in a fresh child process (the variables are read when the process
starts): EfficientNet-Lite0, ``--calls`` forwards of a batch of ``--batch`` composed inputs
(the automatic ``perturbations_per_eval`` on CPU is 16), after one warm-up call.  The
settings alternate ``--repeats`` times; the child reports its wall time, and the parent
reads user / system CPU seconds and minor page faults of the child from ``getrusage``.

    python benchmarks/bench_allocator.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

TUNED = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}

CHILD = r"""
import json, sys, time, torch
from captum_submodular.models import load_model
torch.set_num_threads(int(sys.argv[3]))
model = load_model().model
x = torch.randn(int(sys.argv[1]), 3, 224, 224)
with torch.no_grad():
    model(x)
    start = time.perf_counter()
    for _ in range(int(sys.argv[2])):
        model(x)
print(json.dumps({"forward_s": time.perf_counter() - start}))
"""


def child(tuned: bool, batch: int, calls: int, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in TUNED}
    env["CAPTUM_SUBMODULAR_KEEP_MALLOC"] = "1"
    if tuned:
        env.update(TUNED)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(batch), str(calls), str(threads)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = json.loads(out.strip().splitlines()[-1])
    row.update(
        tuned=tuned,
        user_s=after.ru_utime - before.ru_utime,
        sys_s=after.ru_stime - before.ru_stime,
        minor_faults=after.ru_minflt - before.ru_minflt,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for _ in range(args.repeats):
        for tuned in (False, True):
            rows.append(child(tuned, args.batch, args.calls, args.threads))
            print(json.dumps(rows[-1]), flush=True)
    print(
        f"\n{args.calls} forwards of batch {args.batch}, {args.threads} threads; median of {args.repeats} "
        "(whole child process for CPU seconds and faults: model load included)\n"
    )
    print("| allocator | forward s | user CPU s | system CPU s | minor page faults |")
    print("|---|---:|---:|---:|---:|")
    for tuned in (False, True):
        sel = [r for r in rows if r["tuned"] == tuned]

        def med(key):
            return sorted(r[key] for r in sel)[len(sel) // 2]

        print(
            f"| {'tuned (both variables 4 GiB)' if tuned else 'glibc default'} | {med('forward_s'):.2f} | "
            f"{med('user_s'):.1f} | {med('sys_s'):.1f} | {med('minor_faults'):,} |"
        )


if __name__ == "__main__":
    main()
