"""The score of the last ``mutmut run`` (``make mutation``), from its per-file records mutants/<file>.meta:
killed / (killed + survived + no tests) per file (known equivalent mutants, EQUIVALENT, left out), per top folder and in all, and the surviving mutants' names
(show one with ``mutmut show NAME``). Statuses are mutmut's own (``mutmut.stats.status_by_exit_code``): a
timeout, a crash (segfault) and the type check count as killed; mutants not checked yet (an interrupted run)
are counted apart and left out of the score.

``--save FILE`` also writes the per-file counts as JSON; ``--compare FILE`` prints each file's score then and now
(the "before and after" of issue 11)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

#: mutmut status -> how it counts here
KIND = {"killed": "killed", "timeout": "killed", "caught by type check": "killed", "segfault": "killed",
        "survived": "survived", "no tests": "no tests", "suspicious": "suspicious",
        "not checked": "not run", "check was interrupted by user": "not run", "skipped": "not run"}

#: surviving mutants that no test can kill, because they do not change what the code computes; mutmut can only
#: exclude whole lines (``# pragma: no mutate``), which would hide the line's other mutants, so they are named
#: here (a mutant's number is stable while its function is unchanged) and left out of the score
EQUIVALENT: dict[str, str] = {
    "dynamics.stopping.x_paper_stop_reason__mutmut_19":
        "|train[i] - train[i-1]| < 2e-4 -> <=: the double 2e-4 has an odd 53-bit mantissa (ulp 2^-65), the "
        "difference of two train errors >= 8e-4 is a multiple of 2^-63: never equal",
    "dynamics.request.x__consistent__mutmut_12": "rel_tol=1e-9 dropped: 1e-9 is math.isclose's default",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_13": "err.get('loc', ()) -> None: pydantic's errors always have loc",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_15": "err.get('loc') without default: always present",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_21": "err.get('msg', '') -> None: pydantic's errors always have msg",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_6": "include_url=False dropped: the url is not read",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_7": "include_input=False dropped: the input is not read",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_8": "include_url=True: the url is not read",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_9": "include_input=True: the input is not read",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_23": "err.get('msg') without default: always present",
    "dynamics.request.xǁInvalidRequestǁof__mutmut_26": "err.get('msg', 'XXXX'): always present",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_3": "n = M.shape[-2]: M is square",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_21":
        "argsort not stable: the order among equal counts changes no point's result (each is iterated alone)",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_23": "argsort not stable: as mutant 21",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_29": "always permuting: by the identity, same numbers",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_30": "always permuting: as mutant 29",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_50": "kmax 1 on an empty batch: one pass over nothing",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_69": "astype(None): the ratios are float64 already",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_71": "_to_host(None, ...): _to_host does not read xp on the host",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_77": "reshape(-2): numpy infers any negative size",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_89": "float counts: newton_schulz_sqrt converts them to int64",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_91": "float counts: as mutant 89",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_15": "dtype=np.int64 -> None: counts are ints",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_17": "dtype=np.int64 dropped: counts are ints",
    "dynamics.sqrt_newton_schulz.x_newton_schulz_sqrt__mutmut_26": "argsort kind 'STABLE': numpy ignores the case",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_2": "d = A.shape[+1]: A is (B, d, d)",
    "dynamics.sqrt_newton_schulz.x_sqrt_pair__mutmut_3": "d = A.shape[-2]: A is square",
    "service.grid.x_expand__mutmut_26": "zip(names, index) strict=None: always the same length (one index per axis)",
    "service.grid.x_expand__mutmut_29": "zip without strict: as mutant 26",
    "service.grid.x_expand__mutmut_30": "zip strict=False: as mutant 26",
    "service.security.x_send_json__mutmut_13": "header name CONTENT-TYPE: HTTP header names are case-insensitive",
    "service.security.x_send_json__mutmut_17": "header name CONTENT-LENGTH: as mutant 13",
}


def counts(root: Path = Path("mutants")) -> tuple[dict[str, Counter[str]], list[str]]:
    """Per source file, the number of mutants of each kind; and the survivors' names (no tests included)."""
    by_file: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        c: Counter[str] = Counter()
        for key, code in codes.items():
            kind = KIND[status_by_exit_code[code]]
            if key in EQUIVALENT and kind in ("survived", "no tests"):
                kind = "equivalent"
            c[kind] += 1
            if kind in ("survived", "no tests"):
                survivors.append(key)
        by_file[str(meta.relative_to(root))[: -len(".meta")]] = c
    return by_file, survivors


def score(c: Counter[str]) -> float | None:
    scored = c["killed"] + c["survived"] + c["no tests"]
    return 100 * c["killed"] / scored if scored else None


def totals(by_file: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    """Per top folder ("dynamics/") and "all"."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for name, c in by_file.items():
        out[name.split("/")[0] + "/"] += c
        out["all"] += c
    return dict(sorted(out.items()))


def line(label: str, c: Counter[str]) -> str:
    s = score(c)
    scored = c["killed"] + c["survived"] + c["no tests"]
    pct = f"{s:5.1f}%" if s is not None else "   - "
    extra = "".join(f", {c[k]} {k}" for k in ("no tests", "equivalent", "not run", "suspicious") if c[k])
    return f"{pct}  {c['killed']:4d} killed of {scored:4d}{extra}  {label}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("mutants"))
    parser.add_argument("--save", type=Path, help="write the per-file counts as JSON")
    parser.add_argument("--compare", type=Path, help="a file written by --save: print its score next to this one")
    args = parser.parse_args(argv)
    by_file, survivors = counts(args.root)
    if not by_file:
        print("no mutmut results under mutants/: run `make mutation`")
        return 1
    for name, c in sorted(by_file.items()):
        print(line(name, c))
    print()
    for label, c in totals(by_file).items():
        print(line(label, c))
    if args.compare:
        before = {k: Counter(v) for k, v in json.loads(args.compare.read_text()).items()}
        print(f"\nbefore ({args.compare}) -> now")
        rows = {**{k: before.get(k, Counter()) for k in by_file}, **totals(before)}
        now = {**by_file, **totals(by_file)}
        for name in [*sorted(by_file), *totals(by_file)]:
            b, n = score(rows.get(name, Counter())), score(now[name])
            fmt = lambda s: f"{s:5.1f}%" if s is not None else "   - "  # noqa: E731
            print(f"{fmt(b)} -> {fmt(n)}  {name}")
    if args.save:
        args.save.write_text(json.dumps({k: dict(v) for k, v in sorted(by_file.items())}, indent=1))
    print(f"\n{len(EQUIVALENT)} known equivalent mutants (left out of the score):")
    for key, why in sorted(EQUIVALENT.items()):
        print(f"  {key}: {why}")
    if survivors:
        print(f"\n{len(survivors)} survivors (mutmut show NAME):")
        for key in sorted(survivors):
            print(f"  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
