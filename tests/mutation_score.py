"""The score of the last ``mutmut run`` (``make mutation``), from its per-file records mutants/<file>.meta:
killed / (killed + survived) per file, per top folder and in all, and the surviving mutants' names (show one
with ``mutmut show NAME``). Mutants no test reaches ("no tests") count as survivors; timeouts as killed."""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # a failing test, pytest's internal error, a timeout, the type check
SURVIVED = {0, 5, 33}  # the tests passed, or no test ran the mutant
NOT_RUN = {None, 2, 34}  # not checked, interrupted, skipped


def main(root: Path = Path("mutants")) -> int:
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print("no mutmut results under mutants/: run `make mutation`")
        return 1
    by_file: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        name = str(meta.relative_to(root))[: -len(".meta")]
        c: Counter[str] = Counter()
        for key, code in codes.items():
            kind = "killed" if code in KILLED else "survived" if code in SURVIVED else "not run" if code in NOT_RUN \
                else "suspicious"  # fmt: skip
            c[kind] += 1
            if kind == "survived":
                survivors.append(key)
        by_file[name] = c
    by_folder: dict[str, Counter[str]] = defaultdict(Counter)
    for name, c in by_file.items():
        by_folder[name.split("/")[0]] += c
        by_folder["all"] += c

    def line(label: str, c: Counter[str]) -> str:
        scored = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / scored:5.1f}%" if scored else "   - "
        extra = "".join(f", {c[k]} {k}" for k in ("not run", "suspicious") if c[k])
        return f"{score}  {c['killed']:4d} killed of {scored:4d}{extra}  {label}"

    for name, c in sorted(by_file.items()):
        print(line(name, c))
    print()
    for folder, c in sorted(by_folder.items()):
        print(line(f"{folder}/" if folder != "all" else "all", c))
    if survivors:
        print(f"\n{len(survivors)} survivors (mutmut show NAME):")
        for key in sorted(survivors):
            print(f"  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
