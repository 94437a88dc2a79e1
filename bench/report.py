"""Turn one benchmark run into the printed table, docs/benchmarks.md and a PNG chart.

The document's words live in bench/report.md (a string.Template); this module fills in its
tables from the run's results. The verdict beside each target is the comparison itself, so a
missed target reads "MISSED" without anyone having to notice.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template
from typing import Any


def _ms(t: dict[str, float]) -> str:
    return f"{t['median']:.2f} ms"


def _iqr(t: dict[str, float]) -> str:
    return f"{t['q1']:.2f}-{t['q3']:.2f}"


def _verdict(t: dict[str, Any]) -> str:
    return "met" if t["met"] else "**MISSED**"


def _targets_rows(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for section in ("cold", "request", "scale", "artifact", "memory", "fanin", "latency"):
        for name, t in (results.get(section) or {}).get("targets", {}).items():
            rows.append((name, t))
    return rows


def render_text(results: dict[str, Any]) -> str:
    lines = ["", "target".ljust(78) + "value".rjust(10) + "  limit   verdict"]
    for name, t in _targets_rows(results):
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"{name[:78]:78}{t['value']:>10}  {t['limit']:<7} {verdict}")
    if "request" in results:
        lines.append("")
        lines.append("per request".ljust(60) + "median ms".rjust(10) + "  x floor")
        for name, t in results["request"]["timings"].items():
            ratio = results["request"]["ratios"][name]
            lines.append(f"{name:60}{t['median']:>10.2f}  {ratio:.2f}")
    if "cold" in results:
        lines.append("")
        for name, t in results["cold"]["cpu"].items():
            lines.append(f"cold import CPU  {name:56}{t['median']:>8.1f} ms")
    art = results.get("artifact")
    if art and "skipped" in art:
        lines.append(f"\nartifact: skipped: {art['skipped']}")
    fan = results.get("fanin")
    if fan and "modes" in fan:
        lines.append("")
        lines.append("fan-in".ljust(46) + "server CPU/1000  sessions/run  pooler CPU/1000  req/s")
        for name, m in fan["modes"].items():
            lines.append(
                f"{name:46}{m['server_cpu_ms_per_1000']:>12.0f} ms{m['sessions_per_run']:>14}"
                f"{m['pooler_cpu_ms_per_1000']:>14.0f} ms{m['requests_per_second']:>7}"
            )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> bool:
    """Latency per operation: this project vs floor vs peer (and reuse), plus cold init."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [p for p in ("request", "cold") if p in results]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.2), squeeze=False)
    colors = {"cities": "#1f77b4", "cities reuse": "#2ca02c", "FastAPI peer": "#ff7f0e"}
    ax_i = 0
    if "request" in results:
        ax = axes[0][ax_i]
        ax_i += 1
        t = results["request"]["timings"]
        kinds = ["GET", "POST", "PUT", "LIST"]
        width = 0.2
        for i, label in enumerate(colors):
            values = [t[f"{k} {label}"]["median"] for k in kinds]
            xs = [k + (i - 1) * width for k in range(len(kinds))]
            ax.bar(xs, values, width, label=label, color=colors[label])
        floor = t["floor: connect + SELECT + close"]["median"]
        ax.axhline(floor, color="black", linestyle="--", linewidth=1,
                   label="floor: psycopg2 connect + SELECT + close")  # fmt: skip
        ax.set_xticks(range(len(kinds)), ["GET /cities/{id}", "POST", "PUT", "GET /cities"])
        ax.set_ylabel("median latency per request (ms)")
        ax.set_title("Per request, TCP + SCRAM to local PostgreSQL")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)
    if "cold" in results:
        ax = axes[0][ax_i]
        c = results["cold"]["cpu"]
        names = list(c)
        short = ["cities\n(import handler)", "floor\n(one-route Flask)", "FastAPI\n+ Mangum"]
        ax.bar(short[: len(names)], [c[n]["median"] for n in names],
               color=["#1f77b4", "#7f7f7f", "#ff7f0e"])  # fmt: skip
        ax.set_ylabel("median import CPU time, fresh interpreter (ms)")
        ax.set_title("Cold init")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


TEMPLATE = Path(__file__).with_name("report.md")
DESIGN_MEASUREMENTS = Path(__file__).with_name("design_measurements.md")
NOT_RUN = "Not run (section not selected)."


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    out = [f"- CPU: {m['cpu']}, {m['cores']} cores (shared with other work: noisy)",
           f"- Python {m['python']} on {m['os']}"]
    if "postgres" in m:
        out.append(f"- PostgreSQL {m['postgres']} (throwaway cluster, TCP + SCRAM), psycopg2 "
                   f"{m['psycopg2']}, pg_trgm available: {m['pg_trgm_available']}; migrations "
                   f"applied: {', '.join(m.get('migrations', []))}")
    out += [f"- Load average at start {m['load_average_start']}, at end "
            f"{m['load_average_end']}; the run took {m['duration_seconds']} s",
            f"- Knobs: `{json.dumps(results['knobs'])}`"]
    return out


def _targets(results: dict[str, Any], png: str | None) -> list[str]:
    rows = [[name, t["value"], t["limit"], _verdict(t)] for name, t in _targets_rows(results)]
    out = _table(["target", "measured", "limit", "verdict"], rows)
    return [*out, "", f"![latency per operation]({png})"] if png else out


def _cold(c: dict[str, Any]) -> list[str]:
    out = _table(
        ["contender", "import CPU (median)", "IQR", "import wall (median)", "IQR",
         "whole process wall"],
        [[name, _ms(t), _iqr(t), _ms(c["import"][name]), _iqr(c["import"][name]),
          _ms(c["process"][name])] for name, t in c["cpu"].items()])
    out += ["", f"Wall-clock ratios of the same runs: {c['wall_ratios']['vs floor']}x the floor, "
            f"{c['wall_ratios']['vs peer']}x the FastAPI peer."]
    if "instructions" in c:
        counts = ", ".join(f"{name}: {n / 1e6:.0f}M" for name, n in c["instructions"].items())
        out += ["", f"Instructions executed by the import (callgrind, beyond a bare interpreter "
                f"start): {counts}. Ratios: {c['instruction_ratios']['vs floor']}x the floor, "
                f"{c['instruction_ratios']['vs peer']}x the FastAPI peer."]
    out += ["", "`-X importtime` of `import handler`, self time per top-level package:", ""]
    floor = dict(c["importtime_floor"]["packages"])
    out += _table(["package", "handler (ms)", "floor (ms)"],
                  [[f"`{n}`", ms, floor.get(n, "-")] for n, ms in c["importtime"]["packages"]])
    out += ["", "Largest single modules (self time): " + ", ".join(
        f"`{n}` {ms} ms" for n, ms in c["importtime"]["modules"][:10])]
    return out + _cold_parts(c.get("parts"), c.get("instructions", {}))


def _cold_parts(parts: dict[str, Any] | None, instructions: dict[str, int]) -> list[str]:
    if not parts:
        return []
    sub, tokens = parts["subpackages"], parts["jwt"]
    whole = next(iter(instructions.values()), None)
    share = (lambda n: f"{100 * n / whole:.1f}%") if whole else (lambda n: "-")
    out = ["", "### The project's own import, per subpackage", "",
           "Instructions (callgrind) of the modules of each subpackage that `import handler` "
           "loads, every third-party module already imported, in dependency order (a module "
           "counts where it is first loaded); `handler` is handler.py and `create_app`:", ""]
    out += _table(["part", "modules", "instructions", "of `import handler`"],
                  [[f"`{n}`", sub["modules"][n], f"{i / 1e6:.1f}M", share(i)]
                   for n, i in sub["instructions"].items()]
                  + [["all of the project's own", sum(sub["modules"].values()),
                      f"{sub['project'] / 1e6:.1f}M", share(sub["project"])]])
    out += ["", "### Bearer tokens (JWT/OIDC)", ""]
    with_oidc = tokens["import_handler_with_oidc"] / tokens["import_handler"]
    out += _table(["what", "instructions"], [
        ["`import handler` (whole process start), no issuer configured",
         f"{tokens['import_handler'] / 1e6:.1f}M"],
        ["the same with `JWT_ISSUER` and `JWT_AUDIENCE` set",
         f"{tokens['import_handler_with_oidc'] / 1e6:.1f}M ({with_oidc:.3f}x)"],
        ["first token: of which the lazy imports (PyJWT, cryptography)",
         f"{tokens['lazy_imports'] / 1e6:.1f}M"],
        ["first token: all (imports, discovery + JWKS over HTTP, RS256 check)",
         f"{tokens['first_token'] / 1e6:.1f}M"],
        ["next token (keys cached)", f"{tokens['next_token'] / 1e6:.2f}M"],
    ])
    loaded = "is" if tokens["verifier_imported_at_init"] else "is not"
    out += ["", f"With an issuer configured, PyJWT {loaded} imported by `import handler`."]
    return out


def _request(r: dict[str, Any]) -> list[str]:
    return _table(["operation", "median", "IQR (ms)", "x floor"],
                  [[name, _ms(t), _iqr(t), r["ratios"][name]] for name, t in r["timings"].items()])


def _scale(s: dict[str, Any]) -> list[str]:
    sizes = sorted(s["sizes"], key=int)
    big = s["sizes"][sizes[-1]]
    head = ["page", *(f"{int(n):,} rows" for n in sizes),
            *(f"{int(n):,} rows, per invocation" for n in sizes),
            f"plan at {int(sizes[-1]):,} rows"]
    rows = []
    for name in big["timings"]:
        cells = [_ms(t) if (t := s["sizes"][n].get(key, {}).get(name)) else "-"
                 for key in ("timings", "timings_per_invocation") for n in sizes]
        plan = big["plans"][name]
        rows.append([name, *cells,
                     " > ".join(plan["nodes"]) + (" (seq scan)" if plan["seq_scan"] else "")])
    out = [*_table(head, rows), "", "Rows matching each filter and load time:", ""]
    for n in sizes:
        matches = ", ".join(f"{k}: {v:,}" for k, v in s["sizes"][n]["matches"].items())
        out.append(f"- {int(n):,} rows (loaded in {s['sizes'][n]['load_seconds']} s): {matches}")
    out += ["", "Server-side execution time (EXPLAIN ANALYZE), ms:", ""]
    out += _table(["page", *(f"{int(n):,}" for n in sizes)], [
        [name, *(f"{p['execution_ms']:.3f}" if (p := s["sizes"][n]["plans"].get(name)) else "-"
                 for n in sizes)] for name in big["timings"]])
    return out


def _artifact(art: dict[str, Any]) -> list[str]:
    if "skipped" in art:
        return [f"Skipped: {art['skipped']}."]
    out = [f"`{art['artifact']}`: {art['zipped_mib']} MiB zipped, {art['unpacked_mib']} MiB "
           f"unpacked (Lambda allows 50 MiB zipped, 250 MiB unpacked). `import handler` from the "
           f"unpacked zip alone on Python {art['runtime_python']} with `-B -I -S`:", ""]
    return out + _table(
        ["contender", "import CPU (median)", "IQR", "import wall (median)", "IQR"],
        [[n, _ms(t), _iqr(t), _ms(art["wall"][n]), _iqr(art["wall"][n])]
         for n, t in art["cpu"].items()])


def _memory(mem: dict[str, Any]) -> list[str]:
    steps = sorted(next(iter(mem["modes"].values()))["steps"], key=int)
    return _table(
        ["mode", "after import", *(f"after {s} requests" for s in steps), "peak"],
        [[mode, f"{r['after_import']:.1f} MiB", *(f"{r['steps'][s]:.1f} MiB" for s in steps),
          f"{r['peak']:.1f} MiB"] for mode, r in mem["modes"].items()])


def _fanin(fan: dict[str, Any]) -> list[str]:
    if "skipped" in fan:
        return [f"Skipped: {fan['skipped']}."]
    out = [f"{fan['processes']} concurrent processes x {fan['requests_per_process']} reads each, "
           f"{fan['rounds']} rounds; PgBouncer pool size {fan['pool_size']}, its auth_file "
           "holding the SCRAM verifier.", ""]
    return out + _table(
        ["deployment", "server CPU per 1000 requests", "server sessions per run",
         "PgBouncer CPU per 1000 requests", "requests/s", "errors"],
        [[name, f"{m['server_cpu_ms_per_1000']:.0f} ms", m["sessions_per_run"],
          f"{m['pooler_cpu_ms_per_1000']:.0f} ms", m["requests_per_second"],
          f"{m['errors']} of {m['requests']}"] for name, m in fan["modes"].items()])


def _tls(tls: dict[str, Any]) -> list[str]:
    if "skipped" in tls:
        return [f"Skipped: {tls['skipped']}."]
    out = ["Client instructions (callgrind) per `connect()` with `sslmode=verify-full&"
           f"channel_binding=require` and SCRAM, mean of {tls['connects']} connects: libpq builds "
           "a new TLS context per connection and parses its whole CA file each time.", ""]
    out += _table(["CA file", "certificates", "instructions per connect"],
                  [[n, tls[n]["certificates"], f"{tls[n]['instructions_m']}M"]
                   for n in ("shipped roots", "system bundle")])
    ratio = tls["system bundle"]["instructions_m"] / tls["shipped roots"]["instructions_m"]
    return [*out, "", f"The system bundle (`{tls['bundle']}`, `sslrootcert=system`) costs "
            f"{ratio:.2f}x the shipped roots (cities/db/certs/roots.pem, the default) per connect."]


def _latency(lat: dict[str, Any]) -> list[str]:
    if "skipped" in lat:
        return [f"Skipped: {lat['skipped']}."]
    rows = []
    for name, by_rtt in lat["paths"].items():
        for rtt, row in by_rtt.items():
            app, raw = row["app"], row["psycopg2"]
            rows.append([name, f"{rtt} ms" + (f" ({row['delivered_rtt_ms']})" if int(rtt) else ""),
                         f"{_ms(app)} ({_iqr(app)})", app["round_trips"],
                         f"{_ms(raw)} ({_iqr(raw)})", raw["round_trips"],
                         f"{row['floor_ms']:.2f} ms", f"{row['ratio']}x",
                         f"{row['framework_ratio']}x" if "framework_ratio" in row else "-"])
    return ["`GET /cities/{id}` served as `handler.api` serves it (the API: its Lambda entry, "
            "serverless-wsgi, Flask) and psycopg2 alone doing the "
            "same work, through the delay proxy; RTT nominal (as delivered, ms). On a kept "
            "connection the last column is a one-route Flask app behind serverless-wsgi doing "
            "the same SELECT, in the same rounds: what the framework alone takes:", "",
            *_table(["path", "RTT", "API: median (IQR)", "API round trips",
                     "psycopg2 alone: median (IQR)", "its round trips", "floor", "API x floor",
                     "one-route Flask x floor"], rows), *_kept_instructions(lat)]


def _kept_instructions(lat: dict[str, Any]) -> list[str]:
    counts = lat.get("instructions_per_kept_get")
    if not counts:
        return []
    own = counts["app"] - counts["framework"]
    return ["", "Client instructions per GET on a kept TLS connection (callgrind, mean of "
            f"{lat['callgrind_gets']}): the API {counts['app'] / 1e6:.3f}M, the "
            f"one-route Flask app {counts['framework'] / 1e6:.3f}M, psycopg2 alone "
            f"{counts['psycopg2'] / 1e6:.3f}M; the project's own code is {own / 1e6:.3f}M "
            f"({own / counts['app']:.0%} of the API's)."]


def render_markdown(results: dict[str, Any], png: str | None) -> str:
    from bench.findings import findings
    from bench.runtime import render as render_runtime

    sections = {"cold": _cold, "request": _request, "scale": _scale, "artifact": _artifact,
                "memory": _memory, "fanin": _fanin, "tls": _tls, "latency": _latency}
    fields = {name: "\n".join(build(results[name])) if results.get(name) else NOT_RUN
              for name, build in sections.items()}
    fields["runtime"] = ("\n".join(render_runtime(results["runtime"])).strip()
                         if "runtime" in results else NOT_RUN)
    fields["machine"] = "\n".join(_machine(results))
    fields["targets"] = "\n".join(_targets(results, png))
    fields["quota"] = ("\n".join(results["quota"]["markdown"][3:]).strip()
                       if "quota" in results else NOT_RUN)  # bench/quota.py renders its own
    fields["findings"] = "\n".join(f"- {n}" for n in findings(results))
    # Figures the code's comments point to, taken once when a design was chosen (not re-run).
    fields["design"] = DESIGN_MEASUREMENTS.read_text().rstrip()
    return Template(TEMPLATE.read_text()).substitute(fields)


def render(results: dict[str, Any], output: Path) -> str:
    """Write the report and its chart beside the run's JSON; returns the terminal's table."""
    png_path = output.with_suffix(".png")
    png = png_path.name if chart(results, png_path) else None
    output.write_text(render_markdown(results, png))
    return render_text(results)
