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
    lines = [f"all pairs: {len(m.ok)}/{m.pairs} reachable in {m.seconds:.2f}s"]
    if m.failed and len(m.nodes) <= MATRIX_MAX:
        width = max(len(n) for n in m.nodes)
        lines.append(" " * (width + 2) + " ".join(f"{i % 10}" for i in range(len(m.nodes))))
        for i, s in enumerate(m.nodes):
            row = ["-" if s == d else ("." if (s, d) in m.ok else "X") for d in m.nodes]
            lines.append(f"{s:<{width}} {i % 10} " + " ".join(row))
        lines.append("(. reachable, X not; columns in the order of rows)")
    for (s, d), why in sorted(m.failed.items())[:50]:
        lines.append(f"  FAIL  {s} -> {d}: {why}")
    if len(m.failed) > 50:
        lines.append(f"  ... and {len(m.failed) - 50} more")
    return "\n".join(lines)


def to_json(lab: str, results: list[Result], seconds: float, matrix: Matrix | None = None) -> str:
    data = {"lab": lab, "ok": all(r.ok for r in results) and not (matrix and matrix.failed),
            "seconds": round(seconds, 4), "checks": [r.to_dict() for r in results]}
    if matrix is not None:
        data["all_pairs"] = {"nodes": matrix.nodes, "pairs": matrix.pairs, "reachable": len(matrix.ok),
                             "seconds": round(matrix.seconds, 4),
                             "failed": [{"from": s, "to": d, "detail": why}
                                        for (s, d), why in sorted(matrix.failed.items())]}
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
        for (s, d), why in sorted(matrix.failed.items()):
            case = ET.SubElement(suite, "testcase", classname=f"{lab}.all-pairs", name=f"{s} -> {d}")
            ET.SubElement(case, "failure", message=why, type="ping")
        passed = ET.SubElement(suite, "testcase", classname=f"{lab}.all-pairs",
                               name=f"{len(matrix.ok)} reachable pairs")
        passed.set("time", f"{matrix.seconds:.4f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
