#!/usr/bin/env python3
"""P4 table from the harness's summary.json: median (IQR) regret @10/25/50 per objective and
sampler, ask() at trial 50 from the sequential timing pass, and the P4 goals checked.

usage: p4_report.py results/summary.json
"""
import json
import sys

OBJECTIVES = ["branin", "hartmann6", "rosenbrock4", "ackley5", "knn_digits"]
ORDER = ["tug-bayesian", "gp", "tpe", "random", "tug-random"]


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    return f"{x:.3g}"


def main(path):
    data = json.load(open(path))
    summ, timing = data["summary"], data.get("timing_summary") or {}
    samplers = [s for s in ORDER if any(k.endswith("/" + s) for k in summ)]
    samplers += sorted({k.split("/", 1)[1] for k in summ} - set(samplers))
    print("## Median regret @10 / @25 / @50, and IQR @50\n")
    print("| objective | " + " | ".join(samplers) + " |")
    print("|---|" + "---|" * len(samplers))
    for o in OBJECTIVES:
        cells = []
        for s in samplers:
            e = summ.get(f"{o}/{s}")
            if not e:
                cells.append("-")
                continue
            r = e["regret"]
            c = " / ".join(fmt(r[k]["median"]) for k in ("10", "25", "50") if k in r)
            if "50" in r:
                c += f" ({fmt(r['50']['q25'])}-{fmt(r['50']['q75'])})"
                if o == "knn_digits":
                    c += f" solved {r['50']['n_solved']}/{e['n_seeds']}"
            cells.append(c)
        print(f"| {o} | " + " | ".join(cells) + " |")
    print("\n## ask() at trial 50, ms (sequential timing pass: median over seeds; all = median over runs)\n")
    print("| sampler | " + " | ".join(OBJECTIVES) + " | max |")
    print("|---|" + "---|" * (len(OBJECTIVES) + 1))
    for s in samplers:
        vals = [timing.get(f"{o}/{s}", {}).get("ask_s", {}).get("at_last_median") for o in OBJECTIVES]
        shown = [f"{v * 1e3:.3g}" if v is not None else "-" for v in vals]
        present = [v for v in vals if v is not None]
        worst = f"{max(present) * 1e3:.3g}" if present else "-"
        print(f"| {s} | " + " | ".join(shown) + f" | {worst} |")

    def med(o, s):
        e = summ.get(f"{o}/{s}")
        return e["regret"]["50"]["median"] if e and "50" in e["regret"] else None

    print("\n## P4 goals\n")
    if "tug-bayesian" not in samplers:
        print("tug-bayesian missing")
        return
    wins_gp = []
    for o in OBJECTIVES[:4]:
        t, g = med(o, "tug-bayesian"), med(o, "gp")
        if t is not None and g is not None:
            wins_gp.append(t <= g)
            print(f"- {o}: tug {fmt(t)} vs gp {fmt(g)} -> {'ok' if t <= g else 'MISS'}")
    print(f"- <= gp on {sum(wins_gp)} of {len(wins_gp)} continuous objectives (goal: >= 3)")
    for o in OBJECTIVES:
        t, p = med(o, "tug-bayesian"), med(o, "tpe")
        if t is not None and p is not None:
            print(f"- {o}: tug {fmt(t)} vs tpe {fmt(p)} -> {'ok' if t <= p else 'MISS'}")
    at50 = [timing.get(f"{o}/tug-bayesian", {}).get("ask_s", {}).get("at_last_median") for o in OBJECTIVES]
    at50 = [v for v in at50 if v is not None]
    if at50:
        print(f"- ask() at trial 50: max over objectives {max(at50) * 1e3:.3g} ms (goal <= 5 ms)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/summary.json")
