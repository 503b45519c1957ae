"""The command line, python -m harness COMMAND: every parser, every command handler, the console output.

This is the top of the import graph and the one place that catches
errors.UsageError: bad input anywhere below is printed here as one line, with
exit status 2.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from harness.analysis import compare
from harness.config import scenario
from harness.core import env
from harness.core.errors import StoreError, UsageError
from harness.implementations import registry
from harness.report.render import render
from harness.run import console, shards, sweep
from harness.store.atomic import check_results
from harness.store.meta import ExecutorParams, read_meta
from harness.store.runs import Run, find_run, read_status, writer_gone
from harness.store.traces import trace_files

EXAMPLES = """\
examples:
  python -m harness ls                          implementations, devices here, scenarios
  python -m harness validate scenarios/*.toml   check scenario files
  python -m harness run quick                   the default sweep (make bench)
  python -m harness run stacks                  4 layers, both directions, packed/masked/padded lengths
  python -m harness run smoke --results /tmp/r  a seconds-long run elsewhere
  python -m harness run --resume latest         the missing cases of an interrupted run
  python -m harness compare BASE_ID latest --threshold 10
  python -m harness report                      plots + HTML of results/latest (make report)
  python -m harness report RUN_A,RUN_B          one report over two runs
  python -m harness profile smoke               every case under torch.profiler (make profile)
  python -m harness tensorboard latest          TensorBoard on 127.0.0.1:6006 (make tensorboard)
  python -m harness status latest               a run's status, and its shards'
"""
SHIPPED = "smoke, quick, full, fastrnns, stacks, classics, deepbench, deepbench-short, goals"
TENSORBOARD_RELOAD_S = 5            # seconds between TensorBoard's looks for new traces


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit status 2), like every other mistake."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


# -- commands ----------------------------------------------------------------------------------------
def cmd_ls(args) -> int:
    here = registry.available_devices()
    rows = [(impl.name, impl.cell, ", ".join(d + ("" if d in here else " (absent)") for d in impl.devices),
             registry.gemm_libraries(impl), impl.description) for impl in registry.IMPLS.values()]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]         # aligned, however long a name
    print("implementations (devices available here: " + ", ".join(here) + "; gemm: the libraries of its GEMMs)")
    for r in rows:
        print("  " + " ".join(f"{v:{w}s}" for v, w in zip(r[:4], widths, strict=True)) + f"  {r[4]}")
    print("scenarios")
    named = []
    for path in scenario.shipped():
        try:
            sc = scenario.load(path)
            named.append((sc.name, f"{len(scenario.expand(sc)):5d} cases  {sc.description}"))
        except UsageError as exc:
            named.append((path.stem, f"invalid: {exc}"))
    width = max(len(n) for n, _ in named) if named else 0
    for name, text in named:
        print(f"  {name:{width}s} {text}")
    return 0


def cmd_validate(args) -> int:
    paths = args.files or [str(p) for p in scenario.shipped()]
    bad = 0
    for p in paths:
        try:
            sc = scenario.load(p)
        except scenario.TooLarge as exc:              # valid, but `run` asks for --yes
            print(f"ok: {scenario.resolve(p)} ({exc.size} cases; more than {scenario.MAX_CASES}: run asks for --yes)")
            continue
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        print(f"ok: {sc.path} ({len(scenario.expand(sc))} cases)")
    return 2 if bad else 0


def exit_code(run: Run) -> int:
    """0 when the run is complete and no case failed; 1 otherwise."""
    counts = run.meta.counts
    return 0 if run.meta.status == "complete" and not (counts.get("failed") or counts.get("oom")) else 1


def cmd_run(args) -> int:
    results = Path(args.results)
    sharded = args.executor != "inprocess"
    params = ExecutorParams(partition=args.partition, gpus_per_task=args.gpus_per_task,
                            timeout_min=args.timeout_min, max_parallel=args.max_parallel, retries=args.retries)
    if args.resume:
        if args.scenario:
            raise UsageError("run: give a scenario or --resume RUN_ID, not both")
        if args.device:
            raise UsageError("run: --resume continues the run's own cases; --device is for a new run")
        run_dir = find_run(results, args.resume)
        check_results(results)
        if gone := writer_gone(run_dir, read_meta(run_dir)):
            print(gone.split("; resume it", 1)[0] + ": resuming it")
        if read_meta(run_dir).executor is not None:
            return finished_sharded(shards.run_sharded(None, results, resume=run_dir, quiet=args.quiet))
        run, rows = sweep.run_sweep(None, results, quiet=args.quiet, resume=run_dir)
    else:
        if not args.scenario:
            raise UsageError(f"run: give a scenario ({SHIPPED}, or a path) or --resume RUN_ID")
        sc = scenario.load(args.scenario, max_cases=None if args.yes else scenario.MAX_CASES)
        if args.device:
            sc = scenario.on_device(sc, args.device)
        check_results(results)
        if sharded:
            return finished_sharded(shards.run_sharded(sc, results, args.executor, args.shards, params,
                                                       quiet=args.quiet))
        run, rows = sweep.run_sweep(sc, results, quiet=args.quiet)
    print("fastest per size:")
    print("\n".join(console.fastest_table(rows)) or "  (no case ran)")
    for line in console.numerics_lines(rows):
        print(line)
    print(f"{run.meta.status}: {console.counts_text(run.meta.counts)} in {run.meta.wall_s:.1f} s, "
          f"harness overhead {100 * run.meta.overhead_fraction:.1f}%")
    print(f"results: {run.dir}")
    if run.meta.status == "interrupted":
        print(f"interrupted: resume with  python -m harness run --resume {run.run_id}")
        return 130
    return exit_code(run)


def finished_sharded(run: Run) -> int:
    print(f"{run.meta.status}: {console.counts_text(run.meta.counts)} in {run.meta.executor.shards} shards")
    print(f"results: {run.dir}")
    if run.meta.status != "complete":
        print(f"some shards are not complete: python -m harness status {run.run_id}; "
              f"python -m harness run --resume {run.run_id}")
    return exit_code(run)


def cmd_profile(args) -> int:
    sc = scenario.load(args.scenario)
    check_results(Path(args.results))
    if not sc.throughput:
        raise UsageError(f"{sc.path}: no [[throughput]] section to profile")
    run, _ = sweep.run_sweep(scenario.profiled(sc), Path(args.results), quiet=args.quiet, with_stack=args.with_stack)
    print(f"{run.meta.status}: {len(trace_files(run.dir))} profiled cases in {run.dir / 'profiles'}")
    print(f"open them: make tensorboard RUN={run.run_id}  (or any *.pt.trace.json in https://ui.perfetto.dev)")
    return 0 if run.meta.status == "complete" else 1


def cmd_compare(args) -> int:
    if not args.base:
        raise UsageError("compare: give BASE, a run id in results/ (make bench-compare BASE=<run_id>)")
    results = Path(args.results)
    base, new = find_run(results, args.base), find_run(results, args.run)
    result = compare.compare(base, new, threshold=args.threshold, alpha=args.alpha, strict_env=args.strict_env,
                             group_drift=not args.no_group_drift)
    print("\n".join(result.lines))
    return result.exit_code


def cmd_report(args) -> int:
    out = render(args.run, Path(args.results), Path(args.out))
    print(f"report: {out / 'index.html'}")
    return 0


def cmd_status(args) -> int:
    d = find_run(Path(args.results), args.run)
    meta = read_meta(d)
    counts = meta.counts
    print(f"{meta.run_id}: {read_status(d, meta)}  ({sum(counts.values())} of {meta.scenario.get('cases', '?')} "
          "cases, " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")")
    if gone := writer_gone(d, meta):
        print(f"  {gone}")
    info = meta.executor
    if info is None:
        print("  in-process run (no shards)")
        return 0
    jobs: dict[str, list[str]] = {}
    for attempt in info.jobs:
        for shard, job in attempt.jobs.items():
            jobs.setdefault(shard, []).append(job)
    print(f"  executor {info.kind}, {info.shards} shards")
    latest = [ids[-1] for ids in jobs.values()]
    slurm = shards.slurm_states(latest) if info.kind == "slurm" and shutil.which("squeue") else {}
    for s in map(shards.shard_state, shards.shard_dirs(d)):
        ids = jobs.get(s["shard"], [])
        state = f"  slurm {slurm[ids[-1]]}" if ids and ids[-1] in slurm else ""
        print(f"  shard {s['shard']}  {s['status']:11s} {s['done']:4d} of {s['cases']:4d} cases  "
              f"jobs: {', '.join(ids) or '-'}{state}")
    return 0


def tensorboard_command(logdir: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    exe = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")
    base = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    return base + ["--logdir", str(logdir), "--host", host, "--port", str(port),
                   "--reload_interval", str(TENSORBOARD_RELOAD_S)]


def cmd_tensorboard(args) -> int:
    run_dir = find_run(Path(args.results), args.run)
    logdir = run_dir / "profiles"
    traces = trace_files(run_dir)
    if not traces:
        raise UsageError(f"run {run_dir.name} has no profiles: make profile [SCENARIO=...] first")
    proc = subprocess.Popen(tensorboard_command(logdir, args.port, args.host))
    print(f"TensorBoard on http://{args.host}:{args.port}/#pytorch_profiler  ({len(traces)} profiled cases "
          f"of {run_dir.name}; Ctrl-C stops it)")
    print("offline, the plugin's charts half-render; the traces also open in https://ui.perfetto.dev or "
          f"chrome://tracing: {logdir}/<case>/*.pt.trace.json")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


# -- parsers ------------------------------------------------------------------------------------------
def _command(sub, name: str, func, help: str, examples: list[str], **kw) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=kw.pop("description", help[:1].upper() + help[1:] + "."),
                       epilog="examples:\n" + "\n".join(f"  python -m harness {e}" for e in examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
    p.set_defaults(func=func)
    return p


def _results(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=str(env.RESULTS), help="results directory (default: results/)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m harness", description="lstm-bench: measure recurrent networks in PyTorch.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _command(sub, "ls", cmd_ls, "list implementations and scenarios", ["ls"])

    p = _command(sub, "validate", cmd_validate, "check scenario files",
                 ["validate", "validate scenarios/my.toml"])
    p.add_argument("files", nargs="*", help="scenario files or names (default: every shipped scenario)")

    p = _command(sub, "run", cmd_run, "run a scenario's sweep (make bench)",
                 ["run quick", "run stacks", "run scenarios/my.toml", "run smoke --results /tmp/results",
                  "run --resume latest", "run quick --device cuda",
                  "run full --executor slurm --shards 16 --partition gpu --gpus-per-task 1 --timeout-min 240",
                  "run smoke --executor local --shards 2"],
                 description="Run every case of a scenario and write results/<run_id>/.")
    p.add_argument("scenario", nargs="?", help=f"short name ({SHIPPED}) or a path")
    p.add_argument("--resume", metavar="RUN_ID", help="run only the missing cases of an earlier run (or latest)")
    p.add_argument("--device", help="only the scenario's cases on this device (cpu, cuda, cuda:N); "
                   "the run is named SCENARIO-DEVICE")
    p.add_argument("--yes", action="store_true",
                   help=f"start a grid of more than {scenario.MAX_CASES:,} cases (refused without it)")
    g = p.add_argument_group("shards (harness/run/shards.py)")
    g.add_argument("--executor", choices=("inprocess",) + shards.KINDS, default="inprocess",
                   help="inprocess (default), local (submitit's local processes) or slurm (a job array)")
    g.add_argument("--shards", type=int, default=2, help="how many shards (default 2)")
    g.add_argument("--partition", help="Slurm partition")
    g.add_argument("--gpus-per-task", type=int, help="Slurm GPUs per task")
    g.add_argument("--timeout-min", type=int, help="per-shard time limit in minutes")
    g.add_argument("--max-parallel", type=int, help="Slurm array parallelism")
    g.add_argument("--retries", type=int, default=2, help="resubmissions of a failed shard (default 2)")
    _results(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-case lines")

    p = _command(sub, "profile", cmd_profile, "run a scenario's throughput cases under torch.profiler "
                 "(make profile)", ["profile smoke", "profile quick --with-stack"])
    p.add_argument("scenario")
    _results(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-case lines")
    p.add_argument("--with-stack", action="store_true", help="record Python stacks too (bigger traces)")

    p = _command(sub, "compare", cmd_compare, "fail when a run is slower than a base run (a rank test per case, "
                 "raw and against the machine's canary)",
                 ["compare 20261201T080102Z-vm-1a2b3c4 latest",
                  "compare BASE_ID latest --threshold 5 --alpha 0.001 --strict-env"])
    p.add_argument("base", nargs="?", help="the base run id")
    p.add_argument("run", nargs="?", default="latest", help="the run to check (default: latest)")
    p.add_argument("--threshold", type=float, default=compare.THRESHOLD,
                   help="percent slower that counts, if the rank test agrees (default %(default)g)")
    p.add_argument("--alpha", type=float, default=compare.ALPHA,
                   help="Mann-Whitney U significance level (default %(default)g)")
    p.add_argument("--strict-env", action="store_true",
                   help="refuse runs from different machines or thread counts (default: warn)")
    p.add_argument("--no-group-drift", action="store_true",
                   help="where a run has no canary (format 2): judge each case alone, not against its comparison "
                        "group's common shift")
    _results(p)

    p = _command(sub, "report", cmd_report, "render plots and an HTML report of one or more runs (make report)",
                 ["report", "report RUN_A,RUN_B"])
    p.add_argument("run", nargs="?", default="latest", help="run id, comma-separated run ids, or latest")
    _results(p)
    p.add_argument("--out", default=str(env.REPORTS), help="reports directory (default: reports/)")

    p = _command(sub, "status", cmd_status, "a run's status, and its shards' (done, running, failed)",
                 ["status latest", "status 20261201T080102Z-vm-1a2b3c4"])
    p.add_argument("run", nargs="?", default="latest")
    _results(p)

    p = _command(sub, "tensorboard", cmd_tensorboard, "open a run's profiles in TensorBoard's PyTorch Profiler "
                 "plugin (make tensorboard)", ["tensorboard", "tensorboard RUN_ID --port 6007"])
    p.add_argument("run", nargs="?", default="latest")
    p.add_argument("--port", type=int, default=6006, help="TensorBoard's port (default 6006)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    _results(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
