"""The ``statewright`` command.

    statewright check TARGET... [--all] [--set KEY=VALUE]... [--continue] [--json PATH] [--quiet]
                      [--max-states N] [--max-depth N] [--time-limit S] [--max-memory SIZE]
                      [--workers N] [--symmetry] [--simulate N [--depth D] [--seed S]]
    statewright test TARGET... [--all] [--set KEY=VALUE]... [--examples N] [--seed S]
    statewright mutate TARGET... [--all] [--min PERCENT]
    statewright diagram TARGET|MACHINE... [--all] [--format F]... [--out DIR] [--reachable] [--trace PROPERTY]
    statewright inspect DB|DSN [--key KEY]... [--run RUN_ID] [--spec TARGET]...
    statewright run PLAN --store DB|DSN [--run-id ID] [--input JSON] [--detach]
    statewright resume RUN_ID --store DB|DSN --operations TARGET
    statewright replay RUN_ID --store DB|DSN --operations TARGET
    statewright lincheck HISTORY.jsonl... [--max-steps N] [--time-limit S]
    statewright serve --store DB|DSN --operations TARGET [--partitions N] [--max-partitions K] [--lease S] [--poll S]
    statewright list [TARGET...]
    statewright --version

``statewright COMMAND --help`` describes each command with examples. A
TARGET is a spec name, a file (``orders.py``, ``orders.py:order_spec``) or a
module (``myapp.lifecycles``, ``myapp.lifecycles:order_spec``); see
`adapters.project.targets` for the rules. Inside a project (a pyproject.toml
with ``[tool.statewright] specs = [...]``) ``--all`` means the project's specs.
A mistyped command, spec name or ``--set`` name is one line naming the close
ones (``unknown command 'chek' (did you mean 'check'?)``).

Exit codes: 0 when every property holds (expected violations found, or the
search was bounded with nothing failing), 1 when a property is violated or an
expected violation was not found (or a check ran out of its memory budget),
2 for a usage or definition error, for errors in the user's code and for a
store's typed error (``statewright: error: CODE: ...``) -- always
with a one-line message (plus the trace that reached a failing state, when
there is one; ``--traceback`` adds the original traceback), 130 and 143 when
SIGINT or SIGTERM stopped a check. "internal error" means a bug in statewright.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from statewright.adapters.cli.checking import Aborted, check_command, positive_float, positive_int
from statewright.adapters.cli.commands import (
    diagram_command,
    list_command,
    mutate_command,
    percentage,
    test_command,
)
from statewright.adapters.project.errors import UsageError
from statewright.adapters.project.settings import statewright_version
from statewright.adapters.cli.resources import default_budget, parse_size, size_text, writable_dir, writable_file
from statewright.adapters.cli.serving import add_arguments as serve_arguments
from statewright.adapters.cli.simulating import (
    DEFAULT_DEPTH,
    seed_number,
    simulate_command,
    simulation_options,
    step_count,
)
from statewright.adapters.checking import default_workers
from statewright.adapters.project.targets import Loader
from statewright.kernel.errors import DefinitionError

__all__ = ["UsageError", "main", "run"]

EXIT_OK, EXIT_VIOLATED, EXIT_USAGE = 0, 1, 2

TARGETS = """\
TARGET is one of:
  NAME                      a spec name (see `statewright list`)
  orders.py                 every spec in a file
  orders.py:order_spec      one spec, spec builder or Registry in a file
  myapp.lifecycles          every spec in a module importable from here
  myapp.lifecycles:ORDER    one attribute of a module
A file or module offers its Spec objects, its functions annotated `-> Spec`
whose parameters all have defaults (builders: their parameters are --set
knobs), and its Registry entries. Inside a project whose pyproject.toml has
[tool.statewright] specs = [...], --all means those specs; installed packages
add specs through the `statewright.specs` entry-point group."""


COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "check": (
        "model-check specs",
        "Explore every reachable state of each spec breadth-first and judge its properties; a violation "
        "prints its shortest trace as a table. With --simulate, run random behaviours instead.",
        ("statewright check two_phase",
         "statewright check orders.py --set max_attempts=3 --quiet",
         "statewright check input_lifecycle --set n=7 --max-states 100000 --json report.json",
         "statewright check input_lifecycle --simulate 1000 --seed 7"),
    ),
    "test": (
        "run the generated hypothesis suite of specs",
        "Run each spec's generated hypothesis suite: random programs step the model and assert its "
        "properties after every step. A failure prints the shrunk program as Python to paste, and the "
        "seed that finds it again.",
        ("statewright test two_phase --examples 500",
         "statewright test input_lifecycle --set stage_guard=false --seed 3"),
    ),
    "mutate": (
        "score how many mutants of its machines and system each spec catches",
        "Break each spec's machines one small change at a time (a dropped guard, a row sent elsewhere, ...) "
        "and count the mutants its properties catch: a low score means properties that say too little.",
        ("statewright mutate two_phase", "statewright mutate --all --min 80"),
    ),
    "diagram": (
        "draw machines (or a spec's reachable states) as svg/png/dot/mmd/md",
        "Draw machines from their transition tables, or a spec's reachable state graph, as svg, png "
        "(both need Graphviz), dot, Mermaid (mmd) or Markdown (md).",
        ("statewright diagram input --out diagrams",
         "statewright diagram two_phase --reachable --format svg",
         "statewright diagram diehard --reachable --trace not_solved --format dot"),
    ),
    "inspect": (
        "show the instances, event logs and consumers of a store (SQLite file or PostgreSQL)",
        "Show what a store holds -- each instance's state and version and its event log -- decoded "
        "through the specs' machines, then its runs (phase, states done, the state in flight), its consumers "
        "(cursor, lag, lease) and dead letters; --run shows one run's attempts, facts and child runs. "
        "It only reads: nothing in the store is written or created.",
        ("statewright inspect shop.db", "statewright inspect shop.db --key order-17 --spec orders.py",
         "statewright inspect shop.db --run order-7",
         "statewright inspect postgresql://me@localhost/shop"),
    ),
    "run": (
        "run a pipeline against a store, showing its progress",
        "Launch a run of PLAN -- a Program in a Python file (file.py:NAME) or a JSON plan -- in a store "
        "(SQLite file, created if missing, or PostgreSQL DSN) and drive it to its end, a line per state "
        "entered, completed or failed. The run id comes first: a run whose process dies is resumed with "
        "`statewright resume`. Exit 0 when it completed, 1 when it failed or was cancelled.",
        ("statewright run shop.py:program --store shop.db",
         "statewright run shop.py:program --store shop.db --run-id order-7 --input '{\"items\": [\"mug\"]}'",
         "statewright run plan.json --store postgresql://app@db/runs --detach"),
    ),
    "resume": (
        "drive a stored run to its end",
        "Drive run RUN_ID from its last recorded boundary to its end, as `run` does: states whose completion "
        "is recorded are not run again. Code is not stored with a run, so --operations names it again: "
        "Operations, or the Program or JSON plan the run was started from.",
        ("statewright resume order-7 --store shop.db --operations shop.py:program",),
    ),
    "replay": (
        "replay a finished run and compare its logs byte for byte",
        "Run finished run RUN_ID and its child runs again in replay mode -- IO answered from the recorded "
        "facts, nothing live -- and compare the logs with the recorded ones. Exit 0 when every replay is "
        "identical, 1 at the first difference.",
        ("statewright replay order-7 --store shop.db --operations shop.py:program",),
    ),
    "lincheck": (
        "check that recorded store histories (JSON Lines) are linearizable",
        "Check that histories recorded against a store "
        "(statewright.adapters.testing.linearizability.Recorder, one file per process) are "
        "linearizable: some order of the operations, each taking effect at one instant between its "
        "call and its return, explains every result.",
        ("statewright lincheck history-1.jsonl history-2.jsonl",),
    ),
    "serve": (
        "run a pool process: drive a store's runs, sharing them with the other processes serving it",
        "Drive the runs of a store (SQLite file or PostgreSQL DSN) with the given operations, sharing them with "
        "every other process serving the same store: each takes some of its partitions by lease, and takes a "
        "dead one's over when its lease runs out. Prints a line per run finished; SIGTERM or SIGINT stops it, "
        "releasing its leases.",
        ("statewright serve --store shop.db --operations shop.py:program",
         "statewright serve --store postgresql://app@db/shop --operations myapp.ops:OPS --max-partitions 4"),
    ),
    "list": (
        "list specs (with their origin) and machines",
        "List the specs (where each comes from, and its --set parameters with their defaults) and the "
        "machines they exercise.",
        ("statewright list", "statewright list orders.py"),
    ),
}
"""Each command's one-line help, its description and its examples (``statewright COMMAND --help``)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _common(p: argparse.ArgumentParser, *, names: str = "TARGET", set_params: bool = True) -> None:
    p.add_argument("names", nargs="*", metavar=names, help="specs to use (see TARGET below)")
    p.add_argument("--all", action="store_true", help="every spec: the project's, or the bundled ones outside a project")
    if set_params:
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="params",
                       help="set a spec parameter, e.g. --set n=7 (repeatable)")


def _command(sub: Any, name: str, *, targets: bool = True) -> argparse.ArgumentParser:
    """The parser of one command, with its description and examples (and the TARGET rules) in ``--help``."""
    short, description, examples = COMMANDS[name]
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + ("\n\n" + TARGETS if targets else "")
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=short, description=description, epilog=epilog, formatter_class=_Formatter)
    return parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines as written, and wraps the description as a paragraph."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(("examples:", "TARGET")):
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="statewright", description="Lifecycle state machines you can prove.",
                epilog="`statewright COMMAND --help` describes a command, with examples.")
    p.add_argument("--version", action="store_true", help="print statewright's version and exit")
    p.add_argument("--traceback", action="store_true", help="on an error, also print the original traceback")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    c = _command(sub, "check")
    _common(c)
    c.add_argument("--continue", action="store_true", dest="keep_going",
                   help="explore everything instead of stopping at the first violation")
    c.add_argument("--json", metavar="PATH", type=Path, help="write the report(s) as JSON to PATH")
    c.add_argument("--quiet", action="store_true", help="one line per spec and a tally; no progress, no traces")
    c.add_argument("--max-states", type=positive_int, metavar="N", help="stop once at least N distinct states are known")
    c.add_argument("--max-depth", type=positive_int, metavar="N", help="explore N breadth-first levels at most")
    c.add_argument("--time-limit", type=positive_float, metavar="SECONDS", help="stop a spec's search after SECONDS")
    budget = default_budget()
    c.add_argument("--max-memory", type=parse_size, default=budget, metavar="SIZE",
                   help="stop a search when the process uses more memory, e.g. 8G, 512M, 90%%, none "
                        f"(default: 80%% of memory, {size_text(budget)} here)")
    c.add_argument("--workers", type=positive_int, metavar="N",
                   help=f"processes that share the search (default: the cores here, {default_workers()}); "
                        "1 searches in this process; results are the same")
    c.add_argument("--symmetry", action="store_true",
                   help="explore one state per permutation of the instances a spec declares interchangeable")
    c.add_argument("--simulate", type=positive_int, metavar="N",
                   help="run N random behaviours instead of exploring every state (finds violations, proves nothing)")
    c.add_argument("--depth", type=step_count, metavar="D",
                   help=f"with --simulate: steps per behaviour at most (default {DEFAULT_DEPTH})")
    c.add_argument("--seed", type=seed_number, metavar="S",
                   help="with --simulate: seed that repeats a run (default: a random one, printed)")
    m = _command(sub, "mutate")
    _common(m, set_params=False)
    m.add_argument("--min", type=percentage, default=0.0, metavar="PERCENT",
                   help="exit 1 when a group's score (a machine's, or the system's) is below PERCENT, "
                        "0 to 100; a group with no mutants is not counted (exit 1 too when a spec fails "
                        "its own check: it is not scored)")
    d = _command(sub, "diagram")
    _common(d, names="TARGET|MACHINE", set_params=False)
    d.add_argument("--format", action="append", dest="formats", metavar="FORMAT",
                   help="svg, png, dot, mmd or md (repeatable or comma-separated; default: svg,dot,mmd,md, "
                        "skipping svg without Graphviz; svg or png asked for by name need Graphviz's dot)")
    d.add_argument("--out", type=Path, default=Path("diagrams"), metavar="DIR", help="output folder (default: diagrams)")
    d.add_argument("--reachable", action="store_true", help="draw each spec's reachable state graph instead")
    d.add_argument("--trace", metavar="PROPERTY", help="highlight the counterexample (or witness) of PROPERTY")
    d.add_argument("--limit", type=int, default=500, metavar="N", help="largest reachable graph to draw (default: 500 states)")
    t = _command(sub, "test")
    _common(t)
    t.add_argument("--examples", type=int, default=100, metavar="N", help="programs to run per spec (default 100)")
    t.add_argument("--seed", type=int, default=None, metavar="S",
                   help="seed the programs are drawn from (default 0: every run draws the same programs; "
                        "a failure prints the seed that finds it again)")
    i = _command(sub, "inspect")
    i.add_argument("db", metavar="DB", help="a SQLite file written by statewright's store, or a PostgreSQL DSN "
                                            "(postgresql://user@host/db)")
    i.add_argument("--key", action="append", default=[], metavar="KEY", help="only these instances (repeatable)")
    i.add_argument("--spec", action="append", default=[], metavar="TARGET",
                   help="decode records with the machines of these specs (repeatable; default: the project's "
                        "specs, or the bundled ones)")
    i.add_argument("--run", metavar="RUN_ID", help="show this run: its states' attempts and outcomes, its facts "
                                                   "(with each artifact's kind and size) and its child runs")
    store_help = "a SQLite file or a PostgreSQL DSN (postgresql://user@host/db) holding the runs and their artifacts"
    r = _command(sub, "run", targets=False)
    r.add_argument("plan", metavar="PLAN", help="file.py:NAME naming a Program, or a JSON plan file (.json)")
    r.add_argument("--store", required=True, metavar="DB|DSN", help=store_help + " (a SQLite file is created)")
    r.add_argument("--run-id", metavar="ID", help="the run's id (default: a new random one); launching an id "
                                                  "again with the same plan and input resumes that run")
    r.add_argument("--input", metavar="JSON", help="the run's input as JSON (default: the program's or plan's)")
    r.add_argument("--detach", action="store_true", help="only launch the run (PENDING) and print its id; "
                                                         "`statewright resume` or a pool of executors drives it")
    resumed: list[argparse.ArgumentParser] = []
    for name in ("resume", "replay"):
        rr = _command(sub, name, targets=False)
        rr.add_argument("run_id", metavar="RUN_ID", help="the run's id, as `run` printed it")
        rr.add_argument("--store", required=True, metavar="DB|DSN", help=store_help)
        rr.add_argument("--operations", required=True, metavar="TARGET",
                        help="file.py:NAME naming the Operations (or the Program), or the JSON plan, the run was "
                             "started with")
        resumed.append(rr)
    lc = _command(sub, "lincheck", targets=False)
    lc.add_argument("histories", nargs="+", type=Path, metavar="HISTORY.jsonl",
                    help="history files written by statewright.adapters.testing.linearizability.Recorder (merged)")
    lc.add_argument("--max-steps", type=positive_int, default=2_000_000, metavar="N",
                    help="steps (reading the files, searching, shrinking) before giving up with 'unknown' "
                         "(default 2,000,000)")
    lc.add_argument("--time-limit", type=positive_float, default=None, metavar="S",
                    help="seconds before giving up with 'unknown' (default: no limit)")
    sv = _command(sub, "serve", targets=False)
    serve_arguments(sv)
    ls = _command(sub, "list")
    ls.add_argument("names", nargs="*", metavar="TARGET", help="list these (default: what --all means here)")
    for s in (c, m, d, t, i, r, *resumed, lc, sv, ls):
        s.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def _dispatch(args: argparse.Namespace, loader: Loader, out: TextIO, err: TextIO) -> int:
    if args.command == "check":
        simulation_options(args)
        if args.json is not None:
            writable_file(args.json, "--json")
        if args.simulate is not None:
            return simulate_command(args, loader, out, err)
        return check_command(args, loader, out, err)
    if args.command == "inspect":
        from statewright.adapters.cli.inspecting import inspect_command  # pydantic and asyncio: only here

        return inspect_command(args, loader, out)
    if args.command in ("run", "resume", "replay"):
        from statewright.adapters.cli import running  # the executor and the stores: only here

        command = {"run": running.run_command, "resume": running.resume_command, "replay": running.replay_command}
        return command[args.command](args, loader, out)
    if args.command == "lincheck":
        from statewright.adapters.cli.lincheck import lincheck_command  # the checker: only here

        return lincheck_command(args, out)
    if args.command == "serve":
        from statewright.adapters.cli.serving import serve_command  # the executor and asyncio: only here

        return serve_command(args, loader, out, err)
    if args.command == "test":
        return test_command(args, loader, out)
    if args.command == "diagram":
        writable_dir(args.out, "--out")
        return diagram_command(args, loader, out)
    if args.command == "mutate":
        return mutate_command(args, loader, out)
    if args.command == "list":
        return list_command(args, loader, out)
    raise UsageError(f"expected a command: {_commands()} (see statewright --help)")


def _commands() -> str:
    names = list(COMMANDS)
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def _check_command_word(argv: Sequence[str]) -> None:
    """A mistyped command is one line with the close names (argparse would list every choice, unasked)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word in COMMANDS:
        return
    close = difflib.get_close_matches(word, COMMANDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"unknown command {word!r}{hint}; commands: {_commands()}")


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _store_code(exc: BaseException) -> str | None:
    """The ``code`` of a store's typed error, else None.

    Looked up in ``sys.modules`` rather than imported: a command that never
    loaded the store (and pydantic with it) cannot have raised its errors.
    """
    store = sys.modules.get("statewright.adapters.runtime.store")
    if store is not None and isinstance(exc, store.StoreError):
        return str(exc.code)
    return None


def _explain(exc: BaseException, err: TextIO, show_traceback: bool) -> None:
    """The error line, the trace that reached the failing state (if any), and the traceback if asked."""
    print(f"statewright: error: {_one_line(exc)}", file=err)
    trace = getattr(exc, "trace", None)
    if trace:
        from statewright.adapters.cli.text import render_trace

        print("reached by:", file=err)
        print(render_trace(trace), file=err)
    if show_traceback:
        original = getattr(exc, "original", None) or exc.__cause__ or exc
        traceback.print_exception(original, file=err)


def _warning_to(err: TextIO) -> Callable[..., None]:
    """Warnings as one line each on ``err``: ``statewright: warning: file:line: message``."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: Any) -> None:
        print(f"statewright: warning: {filename}:{lineno}: {message}", file=err)

    return show


def run(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line ``argv`` and return the exit code (for tests and embedding)."""
    out = out or sys.stdout
    err = err or sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in argv
    try:
        _check_command_word(argv)
        args = _parser().parse_args(argv)
        if args.version:
            print(f"statewright {statewright_version()}", file=out)
            return EXIT_OK
        with Loader() as loader, warnings.catch_warnings():
            # a name the user's specs still use from before a rename warns once, with its file and line
            warnings.simplefilter("default", DeprecationWarning)
            warnings.showwarning = _warning_to(err)
            return _dispatch(args, loader, out, err)
    except (UsageError, DefinitionError) as exc:
        _explain(exc, err, show_traceback)
        return EXIT_USAGE
    except Aborted as exc:
        print("statewright: interrupted", file=err)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("statewright: interrupted", file=err)
        return 130
    except BrokenPipeError:  # `statewright list | head`: the reader left; nothing more to say
        return 141
    except Exception as exc:  # a bug of ours, but the user still gets one line, not a traceback
        code = _store_code(exc)
        if code is not None:  # a store failed in a typed way: not a bug, and its code says which way
            print(f"statewright: error: {code}: {_one_line(exc)}", file=err)
            if show_traceback:
                traceback.print_exception(exc, file=err)
            return EXIT_USAGE
        print(f"statewright: internal error: {type(exc).__name__}: {_one_line(exc)}", file=err)
        if show_traceback:
            traceback.print_exception(exc, file=err)
        return EXIT_USAGE


def main() -> NoReturn:
    """Console entry point."""
    code = run()
    if code == 141:  # stdout's reader is gone: keep the interpreter from failing to flush it at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":
    main()
