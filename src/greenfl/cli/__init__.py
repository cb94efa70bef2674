"""The ``greenfl`` command. Each sub-command lives in its own module; this one wires them
and turns every usage error into one line ``error: ...`` and exit code 2."""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 ships its own copy of click, whose exceptions are not click's
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer uses the click package itself
    from click import exceptions as click_exc  # type: ignore[no-redef]

from greenfl._version import __version__
from greenfl.core.errors import GreenflError

app = typer.Typer(
    name="greenfl",
    help="Sustainable federated learning: real training, per-client energy and carbon ledger.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

from greenfl.cli.lifecycle import Interrupted, interrupted_line  # noqa: E402


def _version(value: bool) -> None:
    if value:
        print(f"greenfl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_version
    ),
) -> None:
    """Sustainable federated learning: real training, per-client energy and carbon ledger."""


from greenfl.cli import audit as _audit  # noqa: E402
from greenfl.cli import compare as _compare  # noqa: E402
from greenfl.cli import estimate as _estimate  # noqa: E402
from greenfl.cli import export as _export  # noqa: E402
from greenfl.cli import export_partition as _export_partition  # noqa: E402
from greenfl.cli import fleet as _fleet  # noqa: E402
from greenfl.cli import join as _join  # noqa: E402
from greenfl.cli import report as _report  # noqa: E402
from greenfl.cli import run as _run  # noqa: E402
from greenfl.cli import serve as _serve  # noqa: E402
from greenfl.cli import tune as _tune  # noqa: E402
from greenfl.cli import verify as _verify  # noqa: E402

_run.register(app)
_fleet.register(app)
_compare.register(app)
_tune.register(app)
_report.register(app)
_estimate.register(app)
_export.register(app)
_serve.register(app)
_join.register(app)
_export_partition.register(app)
_audit.register(app)
_verify.register(app)

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    empty = _empty_path_option(args)
    if empty is not None:
        # click turns "" into Path("."): the run would write into the current folder.
        print(f"error: {empty} is empty; name a folder or file", file=sys.stderr)
        return _exit(EXIT_USAGE)
    try:
        # Without standalone mode, click returns typer.Exit's code instead of raising it.
        rv = app(args=args, standalone_mode=False, prog_name="greenfl")
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else str(exc))
        return _exit(0)
    except typer.Exit as exc:
        return _exit(exc.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return _exit(130)
    except click_exc.ClickException as exc:
        print(f"error: {exc.format_message()}".replace("\n", " "), file=sys.stderr)
        return _exit(EXIT_USAGE)
    except GreenflError as exc:
        print(f"error: {exc}".replace("\n", " "), file=sys.stderr)
        return _exit(EXIT_USAGE)
    except Interrupted as exc:
        print(interrupted_line(exc.run, args), file=sys.stderr)
        return _exit(130)
    except KeyboardInterrupt:
        print("error: interrupted before the first round; nothing was kept", file=sys.stderr)
        return _exit(130)
    return _exit(rv if isinstance(rv, int) else 0)


def _empty_path_option(args: list[str]) -> str | None:
    """The first path option given an empty value (``--out ""`` or ``--out=``), if any."""
    for i, a in enumerate(args):
        for opt in PATH_OPTIONS:
            if a == f"{opt}=" or (a == opt and i + 1 < len(args) and args[i + 1] == ""):
                return opt
    return None


PATH_OPTIONS = ("--out", "--token-file", "--tls-cert", "--tls-key", "--ca-cert", "--data-dir")


def _exit(code: int) -> int:
    return code


def console_main() -> None:
    sys.exit(main())
