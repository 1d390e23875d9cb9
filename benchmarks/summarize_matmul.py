#!/usr/bin/env python3
"""Turns bench_matmul's JSON output (--benchmark_out=FILE --benchmark_out_format=json, run with
--benchmark_repetitions=N) into the Markdown tables of docs/PERFORMANCE.md.

Each row shows the median over the repetitions of the rate computed from wall time (what a user
sees on the machine as it was) and from the process CPU time (what the cores achieved while they
were scheduled: on a shared, oversubscribed machine the honest measure of the code).

Usage: benchmarks/summarize_matmul.py bench.json [more.json ...]
"""
import json
import sys


def rows(paths):
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("aggregate_name") != "median":
                continue
            yield b


def main():
    out = {}
    for b in rows(sys.argv[1:]):
        name = b["run_name"].replace("/process_time/real_time", "")
        parts = name.split("/")
        real, cpu = b["real_time"], b["cpu_time"]
        gbs = b.get("GB/s", 0.0)
        gops = b.get("GOP/s", 0.0)
        # Rates in the JSON use wall time; rescale to CPU time (summed over the threads).
        scale = real / cpu if cpu > 0 else 0.0
        out[name] = (parts, real, b["time_unit"], gbs, gops, gbs * scale, gops * scale, b.get("label", ""))
    print("| benchmark | wall time | GB/s (wall) | GOP/s (wall) | GB/s (per CPU-s) | GOP/s (per CPU-s) | kernel |")
    print("|---|---|---|---|---|---|---|")
    for name, (parts, real, unit, gbs, gops, gbs_cpu, gops_cpu, label) in out.items():
        print(f"| {name} | {real:.0f} {unit} | {gbs:.2f} | {gops:.1f} | {gbs_cpu:.2f} | {gops_cpu:.1f} | {label} |")


if __name__ == "__main__":
    main()
