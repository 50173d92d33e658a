"""``python -m pipeline <stage>`` / ``boorugan <stage>``: thin wrappers over the stage functions.

Nothing heavy is imported before a command runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator

from pipeline import stages

DEBUG_HELP = "on a failure, show the traceback too (also BOORUGAN_DEBUG=1)"
VERBOSE_HELP = "also show third-party log lines (httpx, Prefect, MLflow, ...), quiet by default"
# Libraries whose INFO lines (every HTTP request, every server start) drown the stages' own lines.
NOISY_LOGGERS = ("httpx", "httpcore", "urllib3", "alembic", "mlflow", "uvicorn", "asyncio", "distributed", "git",
                 "matplotlib", "PIL", "dvc", "docket", "prefect.task_runs", "prefect.server", "prefect._internal",
                 "prefect.events", "prefect.client")


class _ParamsOrShow(argparse.Action):
    """``compare --params FILE`` names the params file as everywhere; a bare ``--params`` adds the params that differ."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None:
            namespace.show_params = True
        else:
            namespace.params = values


def _common(p: argparse.ArgumentParser, bare_params: bool = False) -> None:
    if bare_params:
        p.add_argument("--params", nargs="?", action=_ParamsOrShow, default="params.yaml", metavar="FILE",
                       help="params file (default: %(default)s); without FILE: add the params that differ between the rows")
    else:
        p.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    p.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param for this run, e.g. -S train.models.dcgan.lr=1e-4 (repeatable)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)


def quiet_third_party(verbose: bool) -> None:
    """Our INFO lines (and the flows' own, prefect.flow_runs) stay; third-party libraries speak at WARNING
    unless ``--verbose`` (or BOORUGAN_VERBOSE=1). Prefect's server telemetry, whose heartbeat fails with a
    traceback when the temporary server's database is busy, is off unless ``--verbose``."""
    import os

    if verbose:
        os.environ["BOORUGAN_VERBOSE"] = "1"
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect configures its own loggers from its logging.yml when it starts, over any level set here;
    # these are that file's overrides ("Finished in state Completed()" per task, the server's requests).
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow sets its logger's level when imported
    os.environ.setdefault("DO_NOT_TRACK", "1")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _stage(args, params) -> None:
    """Every stage command: run it through the table and print its result's line."""
    stage = stages.get(args.command)
    options = {name: getattr(args, name) for name in stage.cli_options}
    print(stage.execute(params, getattr(args, "model", None), **options).line)


def _label(args, params) -> None:
    from pipeline.labels.page.server import run_label

    run_label(params)


def _play(args, params) -> None:
    from pipeline.play.server import run_play

    run_play(params)


def _sample(args, params) -> None:
    from pipeline.core.errors import StageError
    from pipeline.evaluate.sample import sample

    tags = [t for t in (args.tags or "").split(",") if t.strip()]
    try:
        path = sample(params, args.model, n=args.n, tags=tags, seed=args.seed, sketch=args.sketch, ema=not args.no_ema,
                      out=args.out)
    except ValueError as e:  # an unknown tag, tags for an unconditional model, ...
        raise StageError(str(e)) from None
    print(f"sample@{args.model}: {path}")


SAMPLE_MAX_N = 1024
SAMPLE_N_WHY = ("a grid is one PNG, 8 faces a row, drawn in memory: 1024 faces of 1024 px take 13 GB as floats; "
                "for more faces run sample again with another --seed")


def _bounded(low: int, high: int, why: str) -> Callable[[str], int]:
    """An argparse type: an integer in low..high, else a message with the bound's reason."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high} ({why})")
        return value

    return parse


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=_bounded(1, SAMPLE_MAX_N, SAMPLE_N_WHY), default=64,
                   help=f"how many faces, 1..{SAMPLE_MAX_N} (default: %(default)s)")
    p.add_argument("--tags", default="", help='conditional models: comma-separated, e.g. "blue hair,green eyes"')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sketch", default=None, help="sketch2image: a line drawing to colour")
    p.add_argument("--no-ema", action="store_true", help="sample the raw G instead of its EMA copy")
    p.add_argument("--out", default=None, help="PNG path (default: sampled/<model>/<tags>_seed<seed>.png)")


def _compare(args, params) -> None:
    from pipeline.core.errors import StageError
    from pipeline.report.compare import compare_runs, render, status_notes

    show = "all" if args.all else "params" if args.show_params else "default"
    try:
        table = compare_runs(params, args.model, args.since, show=show, latest=not args.every_run)
        if table.empty and args.format == "table":
            print("compare: no training runs match")
            return
        shown = list(table["model"])
        notes = status_notes(params, shown, also=[m for m in params.train.enabled if m not in shown and not args.model])
        print(render(table, args.format, notes=notes, fit_width=show == "default"))
    except ValueError as e:  # a --since that is no date
        raise StageError(str(e)) from None


def _flow(args, params) -> None:
    from flows.pipeline import pipeline_flow

    pipeline_flow(params_path=args.params, overrides=list(args.overrides))


def _refresh(args, params) -> None:
    from flows.refresh import refresh_flow

    refresh_flow(params_path=args.params, overrides=list(args.overrides))


def _serve(args, params) -> None:
    from flows.serve import serve

    serve(args.params, list(args.overrides), cron=args.cron, interval=args.interval, timezone=args.timezone)


def _serve_args(p: argparse.ArgumentParser) -> None:
    when = p.add_mutually_exclusive_group()
    when.add_argument("--cron", help="refresh schedule as a cron string (default: prefect.yaml's, nightly)")
    when.add_argument("--interval", type=float, metavar="SECONDS", help="refresh every SECONDS instead of a cron")
    p.add_argument("--timezone", help="time zone of --cron (default: prefect.yaml's)")


def _init(args, params) -> None:
    from pipeline.starter import write_starter

    path = write_starter(args.folder, force=args.force)
    print(f"init: wrote {path}; every setting is in it (docs: settings reference). Next: boorugan scrape, or "
          f"boorugan scrape -S scrape.source=toy -S crop.detector=none for toy faces without network")


def _init_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", nargs="?", default=".", help="where to write params.yaml (default: the current folder)")
    p.add_argument("--force", action="store_true", help="replace an existing params.yaml with the starter")


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="only this model's runs")
    p.add_argument("--since", help="only runs started on or after this date (YYYY-MM-DD or ISO time, UTC)")
    p.add_argument("--all", action="store_true", help="every param and metric (wide)")
    p.add_argument("--every-run", action="store_true", help="every training run, not only each model's latest")
    p.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    p.set_defaults(show_params=False)


# Tools that are not stages of the pipeline: (help, handler, takes a model, settings section its --help lists)
TOOLS: dict[str, tuple[str, Callable, bool, str | None]] = {
    "label": ("serve the labelling page that writes labels/manual.csv (127.0.0.1)", _label, False, "label"),
    "play": ("serve a page that draws from, compares and walks every trained model in runs/ (127.0.0.1)", _play, False,
             "play"),
    "sample": ("write a grid of faces from a trained model (conditional: --tags)", _sample, True, None),
    "flow": ("run every stage in order as one Prefect flow", _flow, False, "orchestration"),
    "compare": ("every model's latest training run from MLflow, best first (--params, --all, --format)", _compare, False,
                None),
    "refresh": ("one incremental refresh flow run: new posts -> faces -> tags -> retrain what changed", _refresh, False,
                "orchestration"),
    "serve": ("serve the refresh (scheduled) and pipeline deployments from this machine", _serve, False, "orchestration"),
    "init": ("write a starter params.yaml (the project's defaults) into a folder that has none", _init, False, None),
}
NO_PARAMS = frozenset({"init"})  # commands that run before any params.yaml exists
EXTRA_ARGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {"sample": _sample_args, "serve": _serve_args,
                                                                   "compare": _compare_args, "init": _init_args}


def commands() -> dict[str, tuple[str, Callable, bool, str | None]]:
    """Every command: the stages of pipeline/stages.py in pipeline order (read now, so a stage added to
    the table is a command), then the tools."""
    return {**{s.name: (s.help, _stage, s.per_model, s.name) for s in stages.STAGES}, **TOOLS}


class _CommandParser(argparse.ArgumentParser):
    """A command's parser whose help ends with the settings of its params section, generated from the
    pydantic models (pipeline/core/settings_doc.py) when the help is shown, so nothing is imported
    before."""

    settings_section: str | None = None

    def format_help(self) -> str:
        text = super().format_help()
        if self.settings_section:
            from pipeline.core.settings_doc import help_text

            text += "\n" + help_text(self.settings_section)
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boorugan", description="Danbooru faces to GANs: the pipeline's stages.")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>", parser_class=_CommandParser)
    table = {s.name: s for s in stages.STAGES}
    for name, (help_text, _, takes_model, section) in commands().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.settings_section = section
        if takes_model:
            p.add_argument("model", help="a key of train.models in params.yaml")
        if name in NO_PARAMS:
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        else:
            _common(p, bare_params=name == "compare")
        extra = table[name].cli_args if name in table else EXTRA_ARGS.get(name)
        if extra:
            extra(p)
    return parser


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in this process, so it unwinds like Ctrl-C (MLflow runs end
    KILLED, temporary files go); a forked worker (crop's pool) still dies at once, as by default."""
    import os
    import signal
    import threading

    from pipeline.core.failures import Terminated

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def _raise(signum, frame):
        if os.getpid() != owner:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """The one error boundary: whatever fails becomes one paragraph on stderr (what and what to do)
    and a non-zero exit code (pipeline/core/failures.py); ``--debug`` adds the traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import os

    quiet_third_party(args.verbose or os.environ.get("BOORUGAN_VERBOSE") == "1")
    from pipeline.core.failures import EXIT_INTERRUPTED, EXIT_TERMINATED, debug_wanted, explain

    params = None
    try:
        with _sigterm_unwinds():
            if args.command in NO_PARAMS:
                commands()[args.command][1](args, None)
                return 0
            from pipeline.params import load_params

            params = load_params(args.params, args.overrides)
            _, handler, takes_model, _ = commands()[args.command]
            if takes_model:
                params.model(args.model)
            handler(args, params)
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as e:  # noqa: BLE001 - the boundary: every failure gets its paragraph
        failure = explain(e, args.command, params, getattr(args, "model", None))
        if debug_wanted(args.debug):
            traceback.print_exception(e)
        kind = "" if failure.code in (EXIT_INTERRUPTED, EXIT_TERMINATED) else "error: "
        print(f"boorugan {args.command}: {kind}{failure.message}", file=sys.stderr)
        return failure.code
    return 0
