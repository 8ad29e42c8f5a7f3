"""The ``queuelab`` command: find brokers, run the course into a report."""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from queuelab import __version__
from queuelab.brokers import find_brokers
from queuelab.errors import QueuelabError

log = logging.getLogger("queuelab")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The clients log every failed attempt with a traceback; queuelab
        # reports the outcome once, in one line.
        for noisy in ("aio_pika", "aiormq"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    try:
        result: int = args.func(args)
        return result
    except QueuelabError as exc:
        print(f"queuelab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("queuelab: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="queuelab", description="Learn and measure message-queue patterns."
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at info")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    brokers = commands.add_parser("brokers", help="find the brokers and say how")
    _broker_options(brokers)
    brokers.set_defaults(func=_brokers)

    run = commands.add_parser("run", help="run the notebooks into a report")
    _broker_options(run)
    run.add_argument(
        "--notebooks",
        type=Path,
        default=Path("notebooks"),
        help="folder of the course notebooks (default: notebooks)",
    )
    run.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="run only notebooks whose name contains NAME",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("reports"),
        help="folder for the report (default: reports)",
    )
    run.add_argument(
        "--cell-timeout",
        type=_positive_int,
        default=600,
        metavar="S",
        help="seconds a single cell may run (default: 600)",
    )
    run.set_defaults(func=_run)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _broker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amqp-url", help="RabbitMQ URL (else QUEUELAB_AMQP_URL)")
    parser.add_argument("--redis-url", help="Redis URL (else QUEUELAB_REDIS_URL)")


def _brokers(args: argparse.Namespace) -> int:
    with find_brokers(args.amqp_url, args.redis_url) as brokers:
        table = pd.DataFrame(brokers.rows())
        print(table.to_string(index=False))
        for broker in (brokers.rabbitmq, brokers.redis):
            for line in broker.tried:
                print(f"  {broker.kind} skipped {line}")
    return 0


def _run(args: argparse.Namespace) -> int:
    # nbclient and nbconvert take seconds to import: only this command needs them.
    from queuelab.report import (
        failure_message,
        find_notebooks,
        run_notebooks,
        write_index,
    )

    notebooks = _chosen_notebooks(args, find_notebooks)
    _check_out(args.out, args.notebooks)

    with find_brokers(args.amqp_url, args.redis_url) as brokers:
        for broker in (brokers.rabbitmq, brokers.redis):
            print(f"{broker.kind}: {broker.describe()}")
        runs = run_notebooks(
            notebooks,
            args.out,
            env=brokers.environ(),
            cell_timeout_s=args.cell_timeout,
        )
        index = write_index(runs, args.out, brokers.rows())

    print(f"report: {index}")
    message = failure_message(runs)
    if message:
        print(f"queuelab: error: {message}", file=sys.stderr)
        return 1
    return 0


def _chosen_notebooks(
    args: argparse.Namespace, find: Callable[[Path], list[Path]]
) -> list[Path]:
    folder: Path = args.notebooks
    if not folder.is_dir():
        raise QueuelabError(f"notebook folder {folder} does not exist or is a file")
    notebooks = find(folder)
    if not notebooks:
        raise QueuelabError(
            f"no course notebooks in {folder}: they are named NN_name.ipynb"
        )
    if args.only:
        notebooks = [p for p in notebooks if any(n in p.name for n in args.only)]
        if not notebooks:
            raise QueuelabError(f"--only {' '.join(args.only)} matched no notebook")
    return notebooks


def _check_out(out: Path, notebooks: Path) -> None:
    """Refuse a report folder that cannot be written, before any work is done."""
    if out.resolve() == notebooks.resolve():
        raise QueuelabError(
            f"--out {out} is the notebook folder: the executed copies would "
            "overwrite the course notebooks"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".queuelab-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise QueuelabError(
            f"cannot write the report to {out}: {exc.strerror}"
        ) from None


if __name__ == "__main__":
    sys.exit(main())
