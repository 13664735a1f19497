"""The results table (markdown, as docs/performance.md shows it)."""
import sys

TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))


def fmt_triple_time(d):
    unit, scale = next(((u, s) for u, s in TIME_UNITS if d["median"] >= s), TIME_UNITS[-1])
    return " / ".join(f"{d[k] / scale:.3g}" for k in ("min", "median", "max")) + f" {unit}"


def fmt_rate(x):
    return f"{x / 1e6:.3g}M" if x >= 1e6 else f"{x / 1e3:.3g}k" if x >= 1e3 else f"{x:.3g}"


def fmt_triple_rate(d, unit):
    return " / ".join(fmt_rate(d[k]) for k in ("min", "median", "max")) + f" {unit}"


def fmt_mb(kb):
    return f"{kb / 1024:.1f} MB"


def fmt_x(v):
    return "—" if v is None else f"{v:.3g}×"


def target_text(row):
    if row.get("target_text"):
        return row["target_text"]
    parts = []
    if row.get("target") is not None:
        parts.append(f"≥ {row['target']:g}×")
    if row.get("p99") is not None:
        parts.append(f"p99 < {row['p99']:g} ms")
    if row.get("limit_target") is not None:
        lt = row["limit_target"]
        parts.append(f"≤ {1 / lt:.3g}× limit" if row.get("limit_is_time") else f"≥ {lt:g} of limit")
    return ", ".join(parts) or "report"


def result_text(r, clock_word):
    if r.get("load", {}).get("noisy"):
        return "noisy: not judged"
    if r["status"] == "n/a":
        return "n/a (see below)"
    return f"{r['status']} ({clock_word})"


def table_rows(rows, results):
    """rows: the row definitions in order, with `key` (results key),
    `threads`; results: key -> result dict."""
    out = []
    for row in rows:
        r = results.get(row["key"])
        if r is None:
            continue
        what, anchor, thr = row["what"], row.get("anchor_text", "—"), str(row.get("threads", ""))
        target = target_text(row)
        load = r.get("load")
        load_s = f"{load['per_core']:.2f}" if load else "—"
        if r["status"] in ("error", "skipped"):
            msg = r.get("error", "").splitlines()[0][:90] if r.get("error") else ""
            out.append((what, thr, anchor, "—", "—", "—", "—", target, "—", "—", load_s,
                        f"{r['status'].upper()}: {msg}"))
        elif r["kind"] == "time":
            limit = (f"{row['limit_text']}: {fmt_triple_time(r['limit'])}" if "limit" in r else
                     (f"{row['limit_text']}: n/a" if row.get("limit_wl") else "—"))
            frac = f"{r['fraction']:.2f}" if "fraction" in r else "—"
            out.append((what, thr, anchor, fmt_triple_time(r["ours"]),
                        fmt_triple_time(r["anchor"]) if "anchor" in r else "—",
                        fmt_x(r.get("ratio_wall")), fmt_x(r.get("ratio_cpu")), target, limit,
                        frac, load_s, result_text(r, "CPU" if r["clock"] == "cpu" else "wall")))
        elif r["kind"] == "ceiling":
            out.append(ceiling_cells(r, what, thr, target, load_s))
        elif r["kind"] == "rate":
            def side(s):
                if s not in r:
                    return "—"
                return (fmt_triple_rate(r[s]["rate"], r["unit"]) +
                        f"; p99 {r[s]['p99_ms']['median']:.3g} ms")
            limit = f"nginx: {side('limit')}" if "limit" in r else "nginx: n/a"
            frac = f"{r['fraction']:.2f}" if "fraction" in r else "—"
            if "floor" in r:   # issue 15's rows: the fraction of the compute floor (CPU)
                f = r["floor"]
                limit = (f"compute floor, CPU/request: GEMMs {f['gemm_cpu_s']['median'] * 1e6:.3g} "
                         f"µs + nginx {f['nginx_cpu_s'] * 1e6:.3g} µs; CPU-ratio ceiling "
                         f"{fmt_x(r.get('floor_ceiling'))}")
                frac = f"{r['floor_fraction']:.2f}" if "floor_fraction" in r else "—"
            elif row.get("floor_wl"):
                limit, frac = "compute floor: n/a", "—"
            out.append((what, thr, anchor, side("ours"), side("anchor"), fmt_x(r.get("ratio")),
                        fmt_x(r.get("ratio_cpu")), target, limit, frac, load_s,
                        result_text(r, "wall")))
        elif row["key"].startswith("rss"):
            ref = row.get("reference_text") or "—"
            out.append((what, thr, "—", f"{fmt_mb(r['ours']['VmRSS'])} (peak {fmt_mb(r['ours']['VmHWM'])})",
                        ref, "—", "—", "report", "—", "—", load_s, "report"))
        else:
            out.append((what, thr, "—", fmt_triple_time(r["ours"]),
                        f"listening after {fmt_triple_time(r['listening_s'])}", "—", "—",
                        "report", "—", "—", load_s, "report"))
    return out


def ceiling_cells(r, what, thr, target, load_s):
    """The batching ratio's ceiling row (harness/http.py batching_ceiling)."""
    if "error" in r:
        return (what, thr, "—", "—", "—", fmt_x(r.get("ratio")), fmt_x(r.get("ratio_cpu")),
                "report", "n/a", "—", load_s, f"n/a: {r['error']}")
    f = r["forward_floor"]
    ours = (f"unbatched {r['unbatched_us']:.3g} µs ÷ (exchange {r['exchange_us']:.3g} µs + "
            f"floor {f['floor_us_per_row']:.3g} µs/row)")
    parts = (f"64 rows: ours {f['ours_us_per_row']:.3g}, OpenBLAS {f['openblas_us_per_row']:.3g}, "
             f"FMA peak {f['peak_us_per_row']:.3g} µs/row (CPU ISA {f['isa']})")
    frac = " / ".join(f"{r[k]:.2f} {w}" for k, w in (("fraction_wall", "wall"),
                                                      ("fraction_cpu", "CPU")) if k in r)
    return (what, thr, "the same run's sides", ours, parts, fmt_x(r.get("ratio")),
            fmt_x(r.get("ratio_cpu")), "report",
            f"ceiling {r['ceiling']:.3g}× (at the FMA peak {r['ceiling_peak']:.3g}×)",
            frac or "—", load_s, "report")


HEAD = ("workload", "threads", "anchor", "easytorch min / median / max",
        "anchor min / median / max", "ratio (wall)", "ratio (CPU)", "target",
        "limit min / median / max", "fraction of limit", "load/core", "result")


def print_table(rows, file=sys.stdout):
    widths = [max(len(str(r[i])) for r in rows + [HEAD]) for i in range(len(HEAD))]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(HEAD), file=file)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=file)
    for r in rows:
        print(line(r), file=file)
