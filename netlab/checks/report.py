"""Check results for people (a table grouped by layer, a reachability matrix) and for
machines (JSON, JUnit XML)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from .matrix import Matrix
from .result import Result
from .spec import LAYER_ORDER

MATRIX_MAX = 40          # wider labs get a list of failing pairs instead of a grid


def table(lab: str, results: list[Result], seconds: float) -> str:
    lines = []
    width = max((len(r.spec.label) for r in results), default=0)
    for layer in LAYER_ORDER:
        group = [r for r in results if r.spec.layer == layer]
        if not group:
            continue
        lines.append(layer)
        for r in group:
            mark = "PASS" if r.ok else "FAIL"
            lines.append(f"  {mark}  {r.spec.label:<{width}}  {r.detail}")
    failed = sum(1 for r in results if not r.ok)
    lines.append(f"lab {lab}: {len(results)} checks, {len(results) - failed} passed, "
                 f"{failed} failed in {seconds:.2f}s")
    return "\n".join(lines)


def matrix_text(m: Matrix) -> str:
    fams = m.families()
    split = ", ".join(f"IPv{ip} {good}/{total}" for ip, (good, total) in fams.items())
    rounds = f" in {m.rounds} rounds" if m.rounds > 1 else ""
    lines = [f"all pairs: {m.reachable}/{m.pairs} reachable" + (f" ({split})" if len(fams) > 1 else "")
             + f" in {m.seconds:.2f}s{rounds}"]
    if m.failed and len(m.nodes) <= MATRIX_MAX:
        width = max(len(n) for n in m.nodes)
        lines.append(" " * (width + 2) + " ".join(f"{i % 10}" for i in range(len(m.nodes))))
        for i, s in enumerate(m.nodes):
            lines.append(f"{s:<{width}} {i % 10} " + " ".join(_cell(m, s, d) for d in m.nodes))
        legend = "(. reachable, X not"
        if len(fams) > 1:
            legend += ", 4 or 6: only over IPv4 or IPv6"
        lines.append(legend + "; columns in the order of rows)")
    failed = sorted(m.failed.items())
    for (s, d, ip), why in failed[:50]:
        family = f" (IPv{ip})" if ip and len(fams) > 1 else ""
        lines.append(f"  FAIL  {s} -> {d}{family}: {why}")
    if len(failed) > 50:
        lines.append(f"  ... and {len(failed) - 50} more")
    lines += [f"  note: {n}" for n in m.notes]
    return "\n".join(lines)


def _cell(m: Matrix, s: str, d: str) -> str:
    if s == d:
        return "-"
    good = [ip for ip in (4, 6) if (s, d, ip) in m.ok]
    bad = [ip for ip in (0, 4, 6) if (s, d, ip) in m.failed]
    if not bad:
        return "." if good else " "
    return str(good[0]) if len(good) == 1 else "X"


def to_json(lab: str, results: list[Result], seconds: float, matrix: Matrix | None = None) -> str:
    data = {"lab": lab, "ok": all(r.ok for r in results) and not (matrix and matrix.failed),
            "seconds": round(seconds, 4), "checks": [r.to_dict() for r in results]}
    if matrix is not None:
        data["all_pairs"] = {
            "nodes": matrix.nodes, "pairs": matrix.pairs, "reachable": matrix.reachable,
            "families": {f"ipv{ip}": {"pairs": total, "reachable": good}
                         for ip, (good, total) in matrix.families().items()},
            "seconds": round(matrix.seconds, 4), "rounds": matrix.rounds, "notes": matrix.notes,
            "failed": [{"from": s, "to": d, "ip": ip or None, "detail": why}
                       for (s, d, ip), why in sorted(matrix.failed.items())]}
    return json.dumps(data, indent=2)


def to_junit(lab: str, results: list[Result], matrix: Matrix | None = None) -> str:
    suites = ET.Element("testsuites", name=f"netlab check {lab}")
    groups = [(layer, [r for r in results if r.spec.layer == layer]) for layer in LAYER_ORDER]
    for layer, group in groups:
        if not group:
            continue
        suite = ET.SubElement(suites, "testsuite", name=f"{lab}.{layer}", tests=str(len(group)),
                              failures=str(sum(not r.ok for r in group)),
                              time=f"{sum(r.seconds for r in group):.4f}")
        for r in group:
            case = ET.SubElement(suite, "testcase", classname=f"{lab}.{layer}", name=r.spec.label,
                                 time=f"{r.seconds:.4f}")
            if not r.ok:
                ET.SubElement(case, "failure", message=r.detail, type=r.spec.kind).text = \
                    f"{r.spec.where}: {r.detail}"
            else:
                ET.SubElement(case, "system-out").text = r.detail
    if matrix is not None:
        suite = ET.SubElement(suites, "testsuite", name=f"{lab}.all-pairs", tests=str(len(matrix.failed) + 1),
                              failures=str(len(matrix.failed)), time=f"{matrix.seconds:.4f}")
        for (s, d, ip), why in sorted(matrix.failed.items()):
            family = f" (IPv{ip})" if ip else ""
            case = ET.SubElement(suite, "testcase", classname=f"{lab}.all-pairs", name=f"{s} -> {d}{family}")
            ET.SubElement(case, "failure", message=why, type="ping")
        passed = ET.SubElement(suite, "testcase", classname=f"{lab}.all-pairs",
                               name=f"{matrix.reachable} reachable pairs")
        passed.set("time", f"{matrix.seconds:.4f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
