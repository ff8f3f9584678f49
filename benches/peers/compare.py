"""Runs Pulseboard, the fan-out floor and each peer with the same workloads, one server at a
time, each freshly started on loopback and driven by the same load tool (benches/fanout).
Each fan-out workload runs in rounds (`--rounds`, 3 by default): every server once per round,
in turn, so the machine's drift over the run falls on every server alike, and each figure in
the tables is the median of its rounds, with the rounds' range of p50 beside it. The idle
workload is one round: memory does not drift the way latency does. Writes the tables (with
Pulseboard's ratio to each) into BENCHMARKS.md between the `peers:begin` / `peers:end`
markers, the raw figures (every round's too) to docs/benchmarks/peers.json, and the plots to
docs/benchmarks/*.svg. Started by benches/peers/run, which installs everything.

A server that fails to start, or a load that fails against it, fails the run: the exit code
is non-zero and no target is stated as met without the figures that show it. `--quick` runs
Pulseboard and the floor only, briefly, two rounds, on debug builds: the test command uses it
so the comparison's own wiring cannot rot unseen.
"""

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "benchmarks"
PUSHER_APP = ("bench", "bench-key", "bench-secret")

# (name in the tables, load tool adapter, port). Pulseboard's port is unused: the load tool
# starts Pulseboard itself, with the key and the limits its load needs.
SERVERS = [
    ("Pulseboard", "pulseboard", 4100),
    ("floor (bare tokio)", "broadcast", 4101),
    ("Sockudo", "pusher", 4104),
    ("Node ws", "broadcast", 4102),
    ("Socket.IO", "socketio", 4105),
    ("FastAPI + uvicorn", "broadcast", 4103),
]

# (title, subscribers, events/s, seconds, extra load tool flags)
WORKLOADS = [
    ("1k subscribers, 100 events/s", 1000, 100, 10, []),
    ("10k subscribers, 10 events/s", 10000, 10, 10, []),
]
IDLE = ("19k idle connections", 19000, ["--idle", "--processes", "2"])
QUICK = [("200 subscribers, 50 events/s (quick)", 200, 50, 2, ["--require-delivery"])]
QUICK_SERVERS = ("Pulseboard", "floor (bare tokio)")


def server_command(name, port, args, data_dir):
    """The command and environment that start one server on 127.0.0.1:port."""
    host = "127.0.0.1"
    env = dict(os.environ)
    node = ROOT / "benches" / "peers" / "node"
    if name.startswith("floor"):
        return [args.floor, "--listen", f"{host}:{port}"], env, ROOT
    if name == "Sockudo":
        app_id, key, secret = PUSHER_APP
        env.update(
            HOST=host,
            PORT=str(port),
            SOCKUDO_DEFAULT_APP_ID=app_id,
            SOCKUDO_DEFAULT_APP_KEY=key,
            SOCKUDO_DEFAULT_APP_SECRET=secret,
            # Its defaults cap an app at 100 connections and the API at 100 requests a
            # minute: production guards, not fan-out cost.
            SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS="100000",
            SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND="1000000",
            RATE_LIMITER_ENABLED="false",
            METRICS_ENABLED="false",
            QUEUE_DRIVER="none",
            RUST_LOG="warn",
        )
        # Sockudo reads config/ from its working directory: give it an empty one.
        return [args.sockudo], env, data_dir
    if name == "Node ws":
        return ["node", str(node / "ws-server.js"), host, str(port)], env, node
    if name == "Socket.IO":
        return ["node", str(node / "socketio-server.js"), host, str(port)], env, node
    if name.startswith("FastAPI"):
        uvicorn = str(Path(args.venv) / "bin" / "uvicorn")
        command = [uvicorn, "fastapi_server:app", "--host", host, "--port", str(port)]
        return command + ["--log-level", "warning"], env, ROOT / "benches" / "peers"
    raise ValueError(name)


def wait_for_port(port, process, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


def run_tool(name, tool):
    """Runs the load tool; its JSON result, or an error saying why there is none."""
    print(f"  {name}: {' '.join(tool[1:])}", flush=True)
    done = subprocess.run(tool, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        print(f"    failed: {' | '.join(tail)}", flush=True)
        return {"error": tail[-1] if tail else f"exit {done.returncode}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result.get("connected"):
        error = f"none of {result.get('subscribers')} subscribers connected"
        print(f"    failed: {error}", flush=True)
        return {"error": error}
    print(f"    {summary(result)}", flush=True)
    return result


def run_one(name, adapter, port, subscribers, flags, args):
    """Starts the server, runs the load tool once against it, stops the server."""
    tool = [args.fanout, "--protocol", adapter, "--subscribers", str(subscribers), "--json"]
    tool += flags
    if name == "Pulseboard":
        # The tool starts the server binary of its own build, on an empty data dir, with an
        # admin key and no limits per address or key in the way of its load.
        try:
            return run_tool(name, tool)
        except subprocess.TimeoutExpired as error:
            return {"error": str(error)}
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return {"error": f"port {port} is taken by another process: stop it and run again"}
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as data_dir:
        command, env, cwd = server_command(name, port, args, data_dir)
        server = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, server)
            time.sleep(0.5)
            tool += ["--server", f"127.0.0.1:{port}", "--server-pid", str(server.pid)]
            if adapter == "pusher":
                tool += ["--pusher-app", ":".join(PUSHER_APP)]
            return run_tool(name, tool)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"    failed: {error}", flush=True)
            return {"error": str(error)}
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def median_of(rounds):
    """One row from a server's rounds: the median of each figure (an observed value, so a
    count stays a count), the rounds themselves kept beside it. A failed round fails the row,
    since a median of the rounds that ran would hide it."""
    failed = [r for r in rounds if "error" in r]
    if failed:
        return {"error": failed[0]["error"], "rounds": rounds}
    row = {}
    for key, value in rounds[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r.get(key) for r in rounds]
            if all(v is not None for v in values):
                row[key] = statistics.median_low(values)
                continue
        row[key] = value
    row["rounds"] = rounds
    return row


def p50_range(result):
    """The p50 of each round, lowest to highest: how far one round can be from the median."""
    rounds = [r.get("p50_ms") for r in result.get("rounds", [])]
    if len(rounds) < 2 or None in rounds:
        return ""
    return f" ({min(rounds):,.1f}–{max(rounds):,.1f})"


def summary(result):
    keys = ["delivered_per_second", "p50_ms", "p99_ms", "kib_per_idle_connection"]
    return ", ".join(f"{key}={fmt(result.get(key))}" for key in keys)


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def ratio(ours, theirs, higher_is_better):
    """How many times better Pulseboard is: above 1× ahead, below 1× behind."""
    if not ours or not theirs:
        return "n/a"
    times = ours / theirs if higher_is_better else theirs / ours
    return f"{times:.2f}×"


def table(rows, idle=False):
    ours = rows[0][1]
    if idle:
        lines = [
            "| server | connected | connections/s | KiB per idle connection | vs Pulseboard |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
    else:
        lines = [
            "| server | delivered msgs/s | delivered / expected | p50 ms (rounds' range) | p99 ms | p99.9 ms "
            "| KiB per idle connection | CPU µs per message: server · load tool "
            "| Pulseboard's ratio: msgs/s · p50 · p99 · memory |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
    for name, result in rows:
        if "error" in result:
            lines.append(f"| {name} | failed: {result['error']} |")
            continue
        memory = result.get("kib_per_idle_connection")
        if idle:
            versus = "" if result is ours else ratio(
                ours.get("kib_per_idle_connection"), memory, higher_is_better=False
            )
            lines.append(
                f"| {name} | {result['connected']:,} | {fmt(result['connections_per_second'], 0)} "
                f"| {fmt(memory)} | {versus} |"
            )
            continue
        if result is ours:
            versus = "—"
        else:
            versus = " · ".join(
                [
                    ratio(ours.get("delivered_per_second"), result.get("delivered_per_second"), True),
                    ratio(ours.get("p50_ms"), result.get("p50_ms"), False),
                    ratio(ours.get("p99_ms"), result.get("p99_ms"), False),
                    ratio(ours.get("kib_per_idle_connection"), memory, False),
                ]
            )
        lines.append(
            f"| {name} | {fmt(result.get('delivered_per_second'), 0)} "
            f"| {result['delivered']:,}/{result['expected']:,} "
            f"| {fmt(result.get('p50_ms'), 2)}{p50_range(result)} "
            f"| {fmt(result.get('p99_ms'), 2)} | {fmt(result.get('p999_ms'), 2)} "
            f"| {fmt(memory)} | {fmt(result.get('server_cpu_us_per_message'), 2)} · "
            f"{fmt(result.get('tool_cpu_us_per_message'), 2)} | {versus} |"
        )
    return "\n".join(lines)


def plot(slug, title, rows):
    """Three panels: delivered msgs/s, p50/p99 latency (log), KiB per idle connection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(name, result) for name, result in rows if "error" not in result]
    names = [name for name, _ in rows]
    plt.rcParams["svg.fonttype"] = "none"
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colours = ["#2563eb" if name == "Pulseboard" else "#9ca3af" for name in names]
    positions = range(len(names))
    panels = [
        ("delivered msgs/s (higher is better)", "delivered_per_second"),
        ("latency ms, p50 and p99 (lower is better)", None),
        ("KiB per idle connection (lower is better)", "kib_per_idle_connection"),
    ]
    for axis, (label, key) in zip(axes, panels):
        if key is None:
            p50 = [result.get("p50_ms") or 0 for _, result in rows]
            p99 = [result.get("p99_ms") or 0 for _, result in rows]
            axis.barh([p - 0.2 for p in positions], p50, height=0.4, color=colours, label="p50")
            axis.barh(
                [p + 0.2 for p in positions], p99, height=0.4, color=colours, alpha=0.5, label="p99"
            )
            axis.set_xscale("log")
            axis.legend(loc="lower right", fontsize=8)
        else:
            values = [result.get(key) or 0 for _, result in rows]
            axis.barh(list(positions), values, color=colours)
        axis.set_title(label, fontsize=9)
        axis.set_yticks(list(positions))
        axis.set_yticklabels(names if axis is axes[0] else [], fontsize=8)
        axis.invert_yaxis()
        axis.tick_params(axis="x", labelsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUT / f"fanout-{slug}.svg")
    plt.close(figure)


LABELS = {
    "delivered_per_second": "delivered msgs/s",
    "p50_ms": "p50",
    "p99_ms": "p99",
    "kib_per_idle_connection": "memory per idle connection",
}


def targets(results):
    """The issue's targets, each stated as met or not from this run's figures; a target whose
    figures are missing (a server failed) is not met."""
    lines = []
    for title, rows in results["workloads"]:
        ours = rows[0][1]
        if "error" in ours:
            lines.append(f"- {title}: **not met**: Pulseboard failed ({ours['error']})")
            continue
        failed = [n for n, r in rows[1:] if "error" in r]
        peers = [(n, r) for n, r in rows[1:] if "error" not in r and not n.startswith("floor")]
        behind, missing = [], []
        for name, result in peers:
            for key, higher in [("delivered_per_second", True), ("p50_ms", False), ("p99_ms", False),
                                ("kib_per_idle_connection", False)]:
                a, b = ours.get(key), result.get(key)
                if a is None or b is None:
                    missing.append(f"{LABELS[key]} of {name if b is None else 'Pulseboard'}")
                # Within 1% is level: two servers that both deliver the whole offered load
                # differ only by timing noise.
                elif a < b * 0.99 if higher else a > b * 1.01:
                    behind.append(f"{name} on {LABELS[key]}")
        reasons = []
        if behind:
            reasons.append("behind " + ", ".join(behind))
        if failed:
            reasons.append("no figures from " + ", ".join(failed))
        if missing:
            reasons.append("no figure for " + ", ".join(missing))
        lines.append(
            f"- {title}: ahead of every peer on every column — "
            + ("**met**" if not reasons else "**not met**: " + "; ".join(reasons))
        )
        floor = dict(rows).get("floor (bare tokio)", {})
        if floor.get("delivered_per_second") and ours.get("delivered_per_second"):
            share = ours["delivered_per_second"] / floor["delivered_per_second"]
            verdict = "**met**" if share >= 0.7 else "**not met**"
            lines.append(f"- {title}: {share:.0%} of the floor's delivered msgs/s (target 70%) — {verdict}")
        else:
            lines.append(f"- {title}: share of the floor's delivered msgs/s — **not met**: no figure")
        if floor.get("p50_ms") and ours.get("p50_ms"):
            times = ours["p50_ms"] / floor["p50_ms"]
            verdict = "**met**" if times <= 1.3 else "**not met**"
            # Each round's Pulseboard and floor ran minutes apart at most: their ratio is
            # what the machine's drift disturbs least.
            paired = [
                a["p50_ms"] / b["p50_ms"]
                for a, b in zip(ours.get("rounds", []), floor.get("rounds", []))
                if a.get("p50_ms") and b.get("p50_ms")
            ]
            each = ""
            if len(paired) > 1:
                each = " (round by round: " + ", ".join(f"{r:.2f}×" for r in paired) + ")"
            lines.append(
                f"- {title}: p50 {times:.2f}× the floor's{each} (target at most 1.3×) — {verdict}"
            )
        else:
            lines.append(f"- {title}: p50 against the floor's — **not met**: no figure")
    if results.get("idle"):
        ours = results["idle"][0][1]
        if "error" in ours:
            lines.append(f"- idle: **not met**: Pulseboard failed ({ours['error']})")
        else:
            held = ours["connected"]
            memory = ours.get("kib_per_idle_connection") or 0
            verdict = "**met**" if held >= 19000 and 0 < memory <= 4 else "**not met**"
            million = memory * 1e6 / 1024 / 1024
            lines.append(
                f"- idle: {held:,} connections held by one server process (target 19,000), "
                f"{memory:.1f} KiB each (target at most 4 KiB) — {verdict}; a million would "
                f"need about {million:.1f} GiB"
            )
    return "\n".join(lines)


def machine():
    cpus = os.cpu_count()
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{cpus} cores ({model}), {memory}, {platform.system()} {platform.release()}; "
        f"{rustc}; Node {node}; Python {platform.python_version()}"
    )


def write_markdown(results):
    slug = ["1k", "10k"]
    rounds = results.get("rounds", 1)
    how = (
        f" Each fan-out figure is the median of {rounds} rounds, every server once a round in"
        " turn; the idle row is one round."
        if rounds > 1
        else ""
    )
    parts = [
        f"Run on {results['date']} with `benches/peers/run` on {results['machine']}.{how}",
        "",
    ]
    for index, (title, rows) in enumerate(results["workloads"]):
        parts += [f"#### {title}", "", table(rows), ""]
        if index < len(slug):
            parts += [f"![{title}](docs/benchmarks/fanout-{slug[index]}.svg)", ""]
    if results.get("idle"):
        parts += [f"#### {IDLE[0]} (two client processes)", "", table(results["idle"], idle=True), ""]
    parts += ["#### Targets", "", targets(results), ""]
    text = "\n".join(parts)
    path = ROOT / "BENCHMARKS.md"
    document = path.read_text()
    begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def failures(results):
    """Every (workload, server, error) of the run."""
    rows = [(title, rows) for title, rows in results["workloads"]]
    if results.get("idle"):
        rows.append((IDLE[0], results["idle"]))
    return [(title, name, r["error"]) for title, rs in rows for name, r in rs if "error" in r]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--executables", required=True)
    parser.add_argument("--sockudo")
    parser.add_argument("--venv")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--rounds", type=int, help="rounds of each fan-out workload: 3, or 2 with --quick"
    )
    args = parser.parse_args()
    if args.rounds is None:
        # Two with --quick: enough to run the rounds' own wiring in the test command.
        args.rounds = 2 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not args.quick and not (args.sockudo and args.venv):
        parser.error("a full run needs --sockudo and --venv (benches/peers/run gives them)")
    executables = dict(
        line.split(" ", 1) for line in Path(args.executables).read_text().splitlines()
    )
    args.fanout, args.floor = executables["fanout"], executables["floor"]
    servers = [s for s in SERVERS if not args.quick or s[0] in QUICK_SERVERS]

    results = {"date": datetime.date.today().isoformat(), "machine": machine(), "workloads": []}
    results["rounds"] = args.rounds
    for title, subscribers, rate, seconds, flags in QUICK if args.quick else WORKLOADS:
        print(f"\n{title}", flush=True)
        flags = ["--rate", str(rate), "--seconds", str(seconds)] + flags
        rounds = {name: [] for name, _, _ in servers}
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f" round {number} of {args.rounds}", flush=True)
            for name, adapter, port in servers:
                rounds[name].append(run_one(name, adapter, port, subscribers, flags, args))
        rows = [(name, median_of(rounds[name])) for name, _, _ in servers]
        results["workloads"].append((title, rows))
    if not args.quick:
        title, subscribers, flags = IDLE
        print(f"\n{title}", flush=True)
        results["idle"] = [
            (name, run_one(name, adapter, port, subscribers, flags, args))
            for name, adapter, port in servers
        ]

    print()
    for title, rows in results["workloads"]:
        print(f"{title}\n{table(rows)}\n")
    failed = failures(results)
    if not args.quick:
        print(targets(results))
        for (title, rows), slug in zip(results["workloads"], ["1k", "10k"]):
            plot(slug, title, rows)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "peers.json").write_text(json.dumps(results, indent=2) + "\n")
        write_markdown(results)
        print("\nwrote BENCHMARKS.md, docs/benchmarks/peers.json and docs/benchmarks/fanout-*.svg")
    for title, name, error in failed:
        print(f"FAILED: {name} in {title}: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
