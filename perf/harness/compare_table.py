#!/usr/bin/env python3
"""Summarises perf/compare.sh's results.txt into one Markdown table of medians.

Each line of results.txt is key=value pairs: what compare.sh knows (round, proxy, the proxy's
CPU ticks around the run, the upstream's login count) followed by the load generator's own line.
Ratios (xH) are against HAProxy with 1 thread, from the same run.

    python3 perf/harness/compare_table.py RESULTS.txt [MACHINE.txt]
"""
import statistics
import sys

ORDER = ["direct", "haproxy", "haproxy-splice", "haproxy-noreuse", "nginx", "mailring-1",
         "mailring-1-noresume", "mailring-1-wolfssl", "mailring-2"]
REFERENCE = "haproxy"


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            fields = {}
            for item in line.split():
                key, sep, value = item.partition("=")
                if sep:
                    fields[key] = value
            if fields:
                rows.append(fields)
    return rows


def num(row, key):
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return None


def cpu_seconds(row):
    ticks, hz = num(row, "cpu_ticks"), num(row, "clk_tck")
    return ticks / hz if ticks is not None and hz else None


def metrics(row):
    """The table's numbers for one run, keyed by column."""
    out = {}
    mode = row.get("mode")
    if row.get("complete") != "1":
        return out
    if mode == "throughput":
        out["gbps"] = num(row, "gbps")
        gb = (num(row, "literal_bytes") or 0) / 1e9
        cpu = cpu_seconds(row)
        if cpu is not None and gb > 0:
            out["cpu_s_per_gb"] = cpu / gb
    elif mode == "idle":
        out["kib_per_session"] = num(row, "kib_per_session")
        out["threads_held"] = num(row, "threads_held")
        idling = num(row, "idling")
        before, held = num(row, "threads_before"), num(row, "threads_held")
        if idling and before is not None and held is not None:
            out["threads_per_1k"] = (held - before) * 1000 / idling
    elif mode == "churn":
        out["sessions_per_s"] = num(row, "sessions_per_s")
        out["p99_us"] = num(row, "p99_us")
        ok = num(row, "sessions_ok")
        cpu = cpu_seconds(row)
        if cpu is not None and ok:
            out["cpu_us_per_session"] = cpu * 1e6 / ok
        logins = num(row, "upstream_logins")
        if logins is not None and ok:
            out["logins_per_session"] = logins / ok
    return {k: v for k, v in out.items() if v is not None}


def fmt(value, digits):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}".replace(",", " ")


def ratio(value, reference):
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}×"


def main():
    rows = parse(sys.argv[1])
    machine = parse(sys.argv[2]) if len(sys.argv) > 2 else []
    samples = {}  # (proxy, column) -> [values]
    big = {}
    notes = []
    for row in rows:
        proxy = row.get("proxy", "?")
        if row.get("complete") != "1" or row.get("failed", "0") != "0" or row.get("proxy_alive") == "0":
            notes.append(
                f"round {row.get('round')} {proxy} {row.get('mode')}: complete={row.get('complete')} "
                f"failed={row.get('failed', '?')} proxy_alive={row.get('proxy_alive', '?')} "
                f"errors={row.get('errors', '-')}"
            )
        if row.get("round") == "big":
            big[proxy] = row
            continue
        for column, value in metrics(row).items():
            samples.setdefault((proxy, column), []).append(value)

    proxies = [p for p in ORDER if any(key[0] == p for key in samples)]
    proxies += sorted({key[0] for key in samples} - set(proxies))

    def median(proxy, column):
        values = samples.get((proxy, column))
        return statistics.median(values) if values else None

    def spread(proxy, column, digits):
        values = samples.get((proxy, column))
        if not values:
            return "–"
        return f"{fmt(min(values), digits)}–{fmt(max(values), digits)}"

    for fields in machine:
        print(" ".join(f"{k}={v}" for k, v in fields.items()))
    print()
    header = [
        "proxy", "GB/s", "×H", "CPU-s/GB", "×H", "idle KiB/session", "×H", "threads held",
        "Δthreads/1k idle", "churn sessions/s", "×H", "churn p99 µs", "CPU µs/session", "×H",
        "upstream logins/session", "rounds",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for proxy in proxies:
        ref = lambda column: median(REFERENCE, column)  # noqa: E731
        cells = [
            proxy,
            fmt(median(proxy, "gbps"), 2), ratio(median(proxy, "gbps"), ref("gbps")),
            fmt(median(proxy, "cpu_s_per_gb"), 3),
            ratio(median(proxy, "cpu_s_per_gb"), ref("cpu_s_per_gb")),
            fmt(median(proxy, "kib_per_session"), 2),
            ratio(median(proxy, "kib_per_session"), ref("kib_per_session")),
            fmt(median(proxy, "threads_held"), 0),
            fmt(median(proxy, "threads_per_1k"), 2),
            fmt(median(proxy, "sessions_per_s"), 0),
            ratio(median(proxy, "sessions_per_s"), ref("sessions_per_s")),
            fmt(median(proxy, "p99_us"), 0),
            fmt(median(proxy, "cpu_us_per_session"), 1),
            ratio(median(proxy, "cpu_us_per_session"), ref("cpu_us_per_session")),
            fmt(median(proxy, "logins_per_session"), 3),
            str(max((len(samples.get((proxy, c), [])) for c in ("gbps", "sessions_per_s")),
                    default=0)),
        ]
        print("| " + " | ".join(cells) + " |")

    print()
    print("Spread over the rounds (min–max):")
    print()
    print("| proxy | GB/s | CPU-s/GB | idle KiB/session | churn sessions/s | CPU µs/session |")
    print("|---|---|---|---|---|---|")
    for proxy in proxies:
        print(f"| {proxy} | {spread(proxy, 'gbps', 2)} | {spread(proxy, 'cpu_s_per_gb', 3)} | "
              f"{spread(proxy, 'kib_per_session', 2)} | {spread(proxy, 'sessions_per_s', 0)} | "
              f"{spread(proxy, 'cpu_us_per_session', 1)} |")

    if big:
        print()
        print("Idle, once per proxy at the larger count:")
        print()
        print("| proxy | sessions | idling | KiB/session | threads before → held | fds held | "
              "RSS before → held (KiB) |")
        print("|---|---|---|---|---|---|---|")
        for proxy in [p for p in ORDER if p in big] + sorted(set(big) - set(ORDER)):
            row = big[proxy]
            print(f"| {proxy} | {row.get('sessions', '–')} | {row.get('idling', '–')} | "
                  f"{fmt(num(row, 'kib_per_session'), 2)} | "
                  f"{row.get('threads_before', '–')} → {row.get('threads_held', '–')} | "
                  f"{row.get('fds_held', '–')} | "
                  f"{row.get('rss_before_kib', '–')} → {row.get('rss_held_kib', '–')} |")

    print()
    for proxy in proxies:
        if proxy.startswith("mailring"):
            values = samples.get((proxy, "logins_per_session"), [])
            if values:
                verdict = "ok" if all(abs(v - 1) < 0.001 for v in values) else "MISMATCH"
                print(f"Login check, {proxy} churn: upstream logins per session "
                      f"{min(values):.3f}–{max(values):.3f} over {len(values)} rounds "
                      f"(mailring logs in once per session: {verdict}).")
    print()
    if notes:
        print("Runs with failures or an incomplete measurement (left out of the medians when "
              "incomplete):")
        for note in notes:
            print(f"- {note}")
    else:
        print("No failed sessions; every run completed.")


if __name__ == "__main__":
    main()
