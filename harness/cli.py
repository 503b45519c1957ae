"""The command line: python -m harness {ls,validate,run,compare,report,profile,tensorboard}."""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """\
examples:
  python -m harness ls                          implementations, devices here, scenarios
  python -m harness validate scenarios/*.toml   check scenario files
  python -m harness run quick                   the default sweep (make bench)
  python -m harness run smoke --results /tmp/r  a seconds-long run elsewhere
  python -m harness compare BASE_ID latest --threshold 10
  python -m harness report                      plots + HTML of results/latest (make report)
  python -m harness report RUN_A,RUN_B          one report over two runs
  python -m harness profile smoke               every case under torch.profiler (make profile)
  python -m harness tensorboard latest          TensorBoard on 127.0.0.1:6006 (make tensorboard)
"""


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit status 2), like every other mistake."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def cmd_ls(args) -> int:
    from harness import registry

    here = registry.available_devices()
    print("implementations (devices available here: " + ", ".join(here) + ")")
    for impl in registry.IMPLS.values():
        devices = ", ".join(d + ("" if d in here else " (absent)") for d in impl.devices)
        print(f"  {impl.name:13s} {impl.cell:5s} {devices:22s} {impl.description}")
    from harness import scenario

    print("scenarios")
    for path in scenario.shipped():
        try:
            sc = scenario.load(path)
            print(f"  {sc.name:13s} {len(scenario.expand(sc)):5d} cases  {sc.description}")
        except UsageError as exc:
            print(f"  {path.stem:13s} invalid: {exc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m harness", description="lstm-bench: measure recurrent networks in PyTorch.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("ls", help="list implementations and scenarios")
    p.set_defaults(func=cmd_ls)
    from harness import profiles, report, runner, shards  # here: they import UsageError from this module

    runner.add_commands(sub)
    report.add_commands(sub)
    profiles.add_commands(sub)
    shards.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
