"""Run every benchmark: ``python -m benchmarks [--quick] [NAME ...]``.

Each ``bench_*.py`` module here has ``main(quick: bool) -> pandas.DataFrame``
that measures queuelab and a baseline (a plain client doing the same work) in
the same run and returns one row per measurement. The tables are printed and
written to ``data/results/benchmarks/<name>.csv``.
"""

import argparse
import importlib
import pkgutil
from pathlib import Path

import benchmarks

OUT = Path("data/results/benchmarks")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, smoke run")
    parser.add_argument("names", nargs="*", help="run only these (e.g. bench_publish)")
    args = parser.parse_args()

    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__)]
    names = [n for n in names if n.startswith("bench_")]
    if args.names:
        names = [n for n in names if n in args.names]
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        module = importlib.import_module(f"benchmarks.{name}")
        table = module.main(quick=args.quick)
        print(f"\n== {name}\n{table.to_string(index=False)}")
        table.to_csv(OUT / f"{name}.csv", index=False)


if __name__ == "__main__":
    main()
