"""The `actstore` command line. It only parses and calls: heavy libraries load inside commands.

Bad input raises UserError anywhere below; `main` prints it as one line and exits 2
(`-v` shows the traceback instead).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click

from actstore import ARCHS
from actstore.allocator import retain_freed_memory
from actstore.assays import names as assay_names
from actstore.errors import UserError

SCHEDULERS_HELP = "threads (default), processes, local (a LocalCluster), or tcp://HOST:PORT"


@dataclass
class Env:
    """What the global options select; the catalog loads on first use."""

    catalog_path: str | None
    root: str
    profile: str | None
    scheduler: str
    verbose: bool
    _catalog: Any = field(default=None, repr=False)

    @property
    def catalog(self):
        if self._catalog is None:
            from actstore.catalog import load_catalog

            self._catalog = load_catalog(self.catalog_path, self.profile)
        return self._catalog


def _check_scheduler(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value in ("threads", "processes", "local") or value.startswith("tcp://"):
        return value
    raise click.BadParameter(f"{value!r}; valid: {SCHEDULERS_HELP}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--catalog", "catalog_path", metavar="FILE", help="Study catalog (default: ./catalog.yaml).")
@click.option("--root", default="stores", show_default=True, metavar="DIR|URL",
              help="Where data, checkpoints and stores live (a folder or an fsspec URL).")
@click.option("--profile", metavar="NAME", help="Catalog profile: smoke, demo (default) or paper.")
@click.option("--scheduler", default="threads", show_default=True, callback=_check_scheduler,
              metavar="NAME", help=f"Dask scheduler: {SCHEDULERS_HELP}.")
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="actstore")
@click.pass_context
def cli(ctx: click.Context, catalog_path: str | None, root: str, profile: str | None,
        scheduler: str, verbose: bool) -> None:
    """Probe digital twins of mouse V1: train the zoo, store every activation, run every assay."""
    from actstore.store.root import checked_root

    ctx.obj = Env(catalog_path, checked_root(root), profile, scheduler, verbose)


pass_env = click.make_pass_decorator(Env)
arch_option = click.option("--arch", "archs", multiple=True, type=click.Choice(ARCHS),
                           help="Limit to these architectures (repeatable).")
seed_option = click.option("--seed", "seeds", multiple=True, type=int, help="Limit to these seeds (repeatable).")
device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                             help="Compute device (default: the catalog's).")
resources_option = click.option("--resources", metavar="NAME=N[,...]", default=None,
                                help="With --scheduler local|tcp://: what each model's task asks of a worker, "
                                     "e.g. GPU=1 (never two twins on one GPU); local workers declare it too.")
workers_option = click.option("--workers", type=click.IntRange(min=1), default=None,
                              help="With --scheduler local: the number of worker processes.")


def _distributed(env: Env) -> bool:
    return env.scheduler == "local" or env.scheduler.startswith("tcp://")


@cli.command()
@resources_option
@workers_option
@pass_env
def run(env: Env, resources: str | None, workers: int | None) -> None:
    """Everything stale, end to end (data, train, extract, analyze, report)."""
    from actstore.pipeline import run_all
    from actstore.scheduling import parse_resources

    run_all(env.catalog, env.root, env.scheduler, workers=workers, resources=parse_resources(resources))


@cli.command()
@pass_env
def data(env: Env) -> None:
    """Prepare the recordings the catalog names: synthesize the synthetic mouse or validate real files."""
    from actstore.data import prepare_data

    for line in prepare_data(env.catalog, env.root):
        click.echo(line)


@cli.command()
@arch_option
@seed_option
@device_option
@resources_option
@workers_option
@pass_env
def train(env: Env, archs: tuple[str, ...], seeds: tuple[int, ...], device: str | None, resources: str | None,
          workers: int | None) -> None:
    """Train the zoo's missing or stale twins (resuming killed runs), then score them into analysis/neural.zarr.
    With --scheduler local|tcp://HOST:PORT each twin is one task on the cluster, trained in parallel."""
    from actstore.scheduling import dask_scheduler, parse_resources
    from actstore.train import train_zoo

    wanted = parse_resources(resources)
    if not _distributed(env):
        train_zoo(env.catalog, env.root, list(archs) or None, list(seeds) or None, device, log=click.echo)
        return
    with dask_scheduler(env.scheduler, env.root, workers, wanted) as client:
        train_zoo(env.catalog, env.root, list(archs) or None, list(seeds) or None, device, progress=False,
                  log=click.echo, client=client, resources=wanted)


@cli.command()
@click.argument("what", type=click.Choice([*assay_names(), "all"]))
@pass_env
def analyze(env: Env, what: str) -> None:
    """Run an assay of the registry (`actstore status` lists them), or all in order (each only where stale)."""
    from actstore import assays
    from actstore.scheduling import dask_scheduler

    with dask_scheduler(env.scheduler, env.root):
        for line in assays.run(env.catalog, env.root, what):
            click.echo(line)


@cli.command()
@click.option("--recipe", required=True, metavar="R", help="The stimulus set (a recipe in the catalog's stimuli).")
@arch_option
@seed_option
@device_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Stimuli per forward pass.")
@click.option("--rebuild", is_flag=True, help="Replace a store written by another recipe or zoo.")
@resources_option
@workers_option
@pass_env
def extract(env: Env, recipe: str, archs: tuple[str, ...], seeds: tuple[int, ...], device: str | None,
            batch_size: int | None, rebuild: bool, resources: str | None, workers: int | None) -> None:
    """Run the frozen models over one stimulus set into <root>/<recipe>.zarr (only what is missing).
    With --scheduler local|tcp://HOST:PORT each model is one task on the cluster, all writing the one store."""
    from actstore.extract import extract as run_extract
    from actstore.scheduling import dask_scheduler, parse_resources

    args = (env.catalog, env.root, recipe, list(archs) or None, list(seeds) or None, device, batch_size, rebuild)
    if not _distributed(env):
        for line in run_extract(*args):
            click.echo(line)
        return
    wanted = parse_resources(resources)
    with dask_scheduler(env.scheduler, env.root, workers, wanted) as client:
        run_extract(*args, client=client, resources=wanted, log=click.echo)


@cli.command("query")
@click.argument("expr")
@click.option("--columns", multiple=True, metavar="COL[,COL...]",
              help="Columns to show (repeatable or comma-separated; default: all). arch, seed, space, unit "
                   "(neurons: arch, seed, mouse, neuron) always.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]), default="table",
              show_default=True, help="Output format (parquet needs --out).")
@click.option("--out", metavar="FILE", help="Write to FILE instead of stdout.")
@pass_env
def query_units(env: Env, expr: str, columns: tuple[str, ...], fmt: str, out: str | None) -> None:
    """Units matching EXPR, e.g. "arch == 'alexnet' & qc_orientation & gosi > 0.3", or recorded neurons when EXPR
    names a neuron column, e.g. "neuron_r < 0.1 & arch == 'resnet18'"."""
    from actstore.expressions import nothing_matched, query, write_rows

    names = [c.strip() for part in columns for c in part.split(",") if c.strip()]
    rows = query(expr, env.root, columns=names or None)
    text = write_rows(rows, fmt, out)
    if fmt != "table":  # the table says it in place of rows; csv, json and parquet stay parseable
        for line in rows.attrs.get("absent", []):
            click.echo(f"actstore: {nothing_matched(rows)}: {line}", err=True)
    if text is not None:
        click.echo(text.rstrip("\n"))


@cli.command()
@pass_env
def status(env: Env) -> None:
    """What exists under the root, what is stale, and sizes."""
    from actstore.status import status_lines

    for line in status_lines(env.catalog, env.root):
        click.echo(line)


@cli.command()
@pass_env
def report(env: Env) -> None:
    """Figures + <root>/report/index.html from the analyses (only when they changed)."""
    from actstore.report import build_report

    for line in build_report(env.catalog, env.root):
        click.echo(line)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: UserError -> one line on stderr, exit code 2."""
    retain_freed_memory()
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="actstore", standalone_mode=False)
    except UserError as e:
        if verbose:
            raise
        click.echo(f"actstore: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("actstore: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
