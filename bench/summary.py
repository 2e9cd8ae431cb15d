"""The README's performance tables from the outputs of bench/run.sh's steps.

    python3 bench/summary.py CRITERION_DIR OUT_DIR SECONDS

CRITERION_DIR is cargo's target/criterion; OUT_DIR holds aws-requests.txt, intake-load.md and
sender-batch.md as bench/run.sh wrote them. Prints markdown. Exits 1 naming what is missing
when a step's output cannot be read (a failed step must not print a table of blanks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# DefectDojo's measured cost of one scan_added event (reference/defectdojo-notifications.md).
DEFECTDOJO = {10: (16.0, 14), 100: (133.0, 104), 1000: (980.0, 1004)}
SIZES = [10, 100, 1000]

TARGET_SPEEDUP = 100.0
TARGET_RATIO = 0.25
TARGET_BATCH_MS = 300.0
TARGET_COLD_START_MS = 15.0
TARGET_BINARY_BYTES = 8_000_000
TARGET_RSS_BYTES = 32 * 1024 * 1024
MIB = 1024 * 1024

problems: list[str] = []


def verdict(ok: bool) -> str:
    return "**MET**" if ok else "**MISSED**"


def criterion_estimates(root: Path, statistic: str) -> dict[str, float]:
    """full_id → `statistic` ("median", "mean") in ms, from every benchmark criterion has
    saved."""
    values = {}
    for meta in root.glob("**/new/benchmark.json"):
        try:
            full_id = json.loads(meta.read_text())["full_id"]
            estimates = json.loads((meta.parent / "estimates.json").read_text())
            values[full_id] = estimates[statistic]["point_estimate"] / 1e6
        except (OSError, ValueError, KeyError):
            continue
    return values


def table_rows(path: Path) -> list[list[str]]:
    """The cells of every markdown table row in a file (separator rows left out)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        problems.append(f"{path} is missing")
        return []
    rows = []
    for line in lines:
        line = line.strip()
        if line.startswith("|") and not set(line) <= set("|-: "):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def number(cell: str) -> float:
    return float(cell.replace(",", "").replace("`", "").split()[0])


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.1:
        return f"{value * 1000:.1f} µs"
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.0f} ms"


def main() -> int:
    criterion_dir, out, seconds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    medians = criterion_estimates(criterion_dir, "median")
    means = criterion_estimates(criterion_dir, "mean")

    def median(name: str) -> float | None:
        value = medians.get(name)
        if value is None:
            problems.append(f"no criterion result for {name!r}")
        return value

    def mean(name: str) -> float | None:
        value = means.get(name)
        if value is None:
            problems.append(f"no criterion result for {name!r}")
        return value

    # | N | members | alerts | deliveries | DynamoDB requests | SQS calls | duplicate | round trips |
    aws_by_size = {}
    for row in table_rows(out / "aws-requests.txt"):
        try:
            aws_by_size[int(number(row[0]))] = tuple(int(number(row[i])) for i in (4, 5, 7))
        except (ValueError, IndexError):
            continue
    if any(n not in aws_by_size for n in SIZES):
        problems.append("aws-requests.txt lacks a row for 10, 100 or 1,000 members")

    print("## Performance summary (`bench/run.sh`)")
    print()
    print(
        "One `scan_added` event for a product of N members (each with personal and per-product "
        "settings), next to DefectDojo's measured cost of the same event."
    )
    print()
    print(
        "| members | DefectDojo | Herald routing | routing + every record built | "
        "accepted on the embedded store (durable, mean) | speed-up | DynamoDB requests | SQS calls | "
        "AWS round trips |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    speedup_at_1000 = None
    for n in SIZES:
        dd_ms, dd_queries = DEFECTDOJO[n]
        route = median(f"routing/route scan_added, {n} members")
        build = median(f"routing/route + build alerts and deliveries, {n} members")
        # The mean: every event's share of the alert merges that some events run.
        accept = mean(f"intake/accept scan_added, {n} members (route + durable write)")
        speedup = dd_ms / accept if accept else None
        if n == 1000:
            speedup_at_1000 = speedup
        dynamodb, sqs, trips = aws_by_size.get(n, ("—", "—", "—"))
        print(
            f"| {n:,} | {dd_ms:g} ms, {dd_queries:,} SQL queries | {fmt_ms(route)} | {fmt_ms(build)} "
            f"| {fmt_ms(accept)} | {f'{speedup:,.0f}×' if speedup else '—'} | {dynamodb} | {sqs} "
            f"| {trips} |"
        )
    print()
    bell = [median(f"bell/first page of 20, 1000 members, {p} events pending") for p in (1, 32)]
    if all(bell):
        print(
            f"The price of merging alerts in batches, a user's bell at 1,000 members (first page "
            f"of 20, median): {fmt_ms(bell[0])} with one event's alerts pending, "
            f"{fmt_ms(bell[1])} with 32 (the most a batch holds at this size)."
        )
        print()

    # Intake against bare axum.
    rows = table_rows(out / "intake-load.md")
    bare = next((r for r in rows if r[0].startswith("bare axum")), None)
    scan = next((r for r in rows if "scan_added" in r[0] and "conns" in r[1]), None)
    opened = next((r for r in rows if "open loop" in r[1]), None)
    if not (bare and scan and opened):
        problems.append("intake-load.md has no bare / scan_added / open-loop rows")

    # Sender batch and cold starts.
    rows = table_rows(out / "sender-batch.md")
    batch = next((r for r in rows if len(r) == 12 and r[0] == "sender-slack"), None)
    cold = [r for r in rows if len(r) == 7 and not r[0].startswith("function")]
    if not batch:
        problems.append("sender-batch.md has no sender-slack batch row")
    if not cold:
        problems.append("sender-batch.md has no cold-start rows")

    if problems:
        for p in problems:
            print(f"[bench] ERROR: {p}", file=sys.stderr)
        return 1

    ratio = number(scan[6])
    batch_p50 = number(batch[4])
    batch_rss = number(batch[10]) * MIB
    cold_p50 = max(number(r[1]) for r in cold)
    rss = max(max(number(r[4]), number(r[5])) for r in cold) * MIB
    binary = max(number(r[6]) for r in cold) * MIB
    small, large = aws_by_size[10], aws_by_size[1000]

    print("| target | measured | verdict |")
    print("|---|---|---|")
    print(
        f"| ≥ {TARGET_SPEEDUP:.0f}× faster than DefectDojo at 1,000 members | "
        f"{speedup_at_1000:,.0f}× (980 ms → {fmt_ms(980 / speedup_at_1000)}) | "
        f"{verdict(speedup_at_1000 >= TARGET_SPEEDUP)} |"
    )
    print(
        f"| AWS round trips that do not grow with the audience | {small[2]} at 10 members, "
        f"{aws_by_size[100][2]} at 100, {large[2]} at 1,000 (requests: DynamoDB {small[0]} → "
        f"{large[0]}, SQS {small[1]} → {large[1]}; none per member, the batches go out "
        f"together) | {verdict(large[2] <= small[2])} |"
    )
    print(
        f"| local intake ≥ {TARGET_RATIO:.0%} of a bare axum server | {ratio:.3f} "
        f"({number(scan[2]):,.0f} vs {number(bare[2]):,.0f} requests/s; "
        f"at 1,000/s offered p99 {number(opened[4]):.1f} ms) | {verdict(ratio >= TARGET_RATIO)} |"
    )
    print(
        f"| a sender batch of 10 against a 200 ms sink ≤ {TARGET_BATCH_MS:.0f} ms | "
        f"p50 {batch_p50:.0f} ms, max {number(batch[7]):.0f} ms (peak RSS {batch_rss / MIB:.1f} MiB) | "
        f"{verdict(batch_p50 <= TARGET_BATCH_MS)} |"
    )
    print(
        f"| cold start ≤ {TARGET_COLD_START_MS:.0f} ms (process start → first Runtime API request) | "
        f"slowest function p50 {cold_p50:.1f} ms | {verdict(cold_p50 <= TARGET_COLD_START_MS)} |"
    )
    print(
        f"| binaries ≤ 8 MB stripped | largest {binary / 1e6:.1f} MB ({binary / MIB:.1f} MiB) | "
        f"{verdict(binary <= TARGET_BINARY_BYTES)} |"
    )
    print(
        f"| RSS ≤ 32 MiB | largest {rss / MIB:.1f} MiB | {verdict(rss <= TARGET_RSS_BYTES)} |"
    )
    print()
    print("| function | cold start p50 | RSS at first request | binary |")
    print("|---|---:|---:|---:|")
    for r in cold:
        print(f"| {r[0]} | {number(r[1]):.1f} ms | {number(r[4]):.1f} MiB | {number(r[6]):.1f} MiB |")
    print()
    print(f"All steps took {seconds} s. Detailed tables: the outputs of each step in {out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
