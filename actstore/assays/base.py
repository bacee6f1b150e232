"""The Assay protocol and the one reconcile routine every assay goes through.

An assay holds parameters only (its constructor, filled from the catalog's `analysis.<name>` section), declares
what it reads (activation stores, other analyses), and computes purely on the lazily opened xarray objects by
calling actstore.analysis. `reconcile` does the rest for all of them alike: it records what a result is computed
from (the assay's version and parameters, the zoo, and a fingerprint of each input), does nothing when the
published result records exactly that, and otherwise publishes the new result atomically (store/analysis.py).
What the CLI, `status`, the report, the stats table and the units table show comes from the same classes.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import xarray as xr

from actstore.assays.inputs import as_json, open_input_store, text_as_objects
from actstore.store.analysis import analysis_inputs, open_analysis, write_analysis
from actstore.store.ledger import Ledger, complete_models, read_ledger, store_fingerprint
from actstore.store.paths import Layout

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from actstore.catalog import Catalog
    from actstore.report.html import Section


@dataclass(frozen=True)
class Zoo:
    """The models every result is laid out for: the arch and seed axes, and the (arch, seed) models in order."""

    archs: list[str]
    seeds: list[int]
    models: list[tuple[str, int]]
    run_seed: int

    @classmethod
    def of(cls, catalog: Catalog) -> Zoo:
        return cls(catalog.archs, list(catalog["zoo"]["seeds"]), catalog.models, int(catalog["run_seed"]))


class Opened(Mapping[str, Any]):
    """Named inputs, each opened on first use and kept (None when absent): deciding that a result is current
    opens none of them."""

    def __init__(self, names: Iterable[str], opener: Callable[[str], Any]):
        self._names, self._opener, self._opened = list(names), opener, {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._opened:
            self._opened[name] = self._opener(name)
        return self._opened[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass
class Sources:
    """What an assay reads: activation stores and analyses by name, opened lazily as xarray (None when absent);
    what decides currency, read without opening them (each store's ledger, each analysis' recorded inputs); and
    `extra`, anything else an assay reads (checkpoint metadata, ground truth), with its own fingerprint."""

    zoo: Zoo
    root: str
    stores: Mapping[str, xr.Dataset | None] = field(default_factory=dict)
    analyses: Mapping[str, xr.Dataset | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    ledgers: dict[str, Ledger | None] = field(default_factory=dict)
    recorded: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @classmethod
    def of(cls, zoo: Zoo, root: str, stores: Iterable[str] = (), analyses: Iterable[str] = (),
           extra: dict[str, Any] | None = None) -> Sources:
        """The named stores and analyses under `root`: ledgers and records read now, datasets when first used."""
        stores, analyses = list(stores), list(analyses)
        return cls(zoo, root, Opened(stores, partial(open_input_store, root)), Opened(analyses, partial(
            open_analysis, root)), extra or {}, {n: read_ledger(Layout(root).store(n)) for n in stores},
            {n: analysis_inputs(root, n) for n in analyses})


class Assay(ABC):
    """One analysis -> `<root>/analysis/<output>.zarr`. Subclasses set the class attributes, `compute`, and may
    add report sections and per-model columns for the stats table."""

    name: ClassVar[str]  # the `actstore analyze <name>` choice: the module's name
    output: ClassVar[str]  # analysis/<output>.zarr: the name unless a subclass says otherwise
    version: ClassVar[str]  # bump when the computation changes: results are then recomputed
    summary: ClassVar[str]  # what it measures, in one line (status, CLI help)
    position: ClassVar[int]  # order of runs and report sections; an assay runs after those it reads
    stores: ClassVar[tuple[str, ...]] = ()  # activation stores it reads
    analyses: ClassVar[tuple[str, ...]] = ()  # analyses it reads
    columns: ClassVar[dict[str, tuple[str, ...]]] = {}  # stats group -> the per-model columns it gives the table
    errors: ClassVar[dict[str, bool]] = {}  # columns with `<c>_se`, `<c>_n`: are the seeds' errors independent?
    pairs: ClassVar[tuple[tuple[str, str], ...]] = ()  # (x group, y group) pairs the stats relate

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and "output" not in cls.__dict__:
            cls.output = cls.name

    def __init__(self, **params: Any) -> None:
        self.params = params

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> Assay:
        """The assay with the parameters of the catalog's analysis.<name> section (none: the defaults)."""
        return cls(**catalog["analysis"].get(cls.name, {}))

    def open(self, catalog: Catalog, root: str) -> Sources:
        """The declared stores and analyses, lazily; heavy libraries (torch, matplotlib) stay unloaded."""
        return Sources.of(Zoo.of(catalog), root, self.stores, self.analyses)

    def fingerprint(self, sources: Sources) -> dict[str, Any]:
        """What identifies the inputs: each store's ledger fingerprint, each analysis' recorded inputs."""
        return {"stores": {k: store_fingerprint(led) for k, led in sources.ledgers.items()},
                "analyses": dict(sources.recorded)}

    def skip(self, sources: Sources) -> str | None:
        """Why there is nothing to compute (one line), or None: by default, when no declared store holds a
        complete model of the zoo."""
        if self.stores and not any(led is not None and complete_models(led, sources.zoo.models)
                                   for led in sources.ledgers.values()):
            names = ", ".join(f"{n}.zarr" for n in self.stores)
            hint = "; ".join(f"`actstore extract --recipe {n}`" for n in self.stores)
            return f"no complete models in {names} under {sources.root}; skipped (run {hint} first)"
        return None

    def record(self, sources: Sources) -> dict[str, Any]:
        """What the result is computed from, as it reads back from Zarr attrs."""
        return as_json({"version": self.version, "params": self.params, "zoo": asdict(sources.zoo),
                        "inputs": self.fingerprint(sources)})

    @abstractmethod
    def compute(self, sources: Sources) -> tuple[xr.Dataset, list[str]]:
        """The result on the zoo's (arch, seed, ...) grid and summary lines; pure on the opened inputs."""

    def publish(self, result: xr.Dataset, root: str, record: dict[str, Any]) -> list[str]:
        """Write the result atomically with its record; the summary lines say where."""
        return [f"{self.name}: wrote {write_analysis(text_as_objects(result), root, self.output, record)}"]

    def current(self, root: str, record: dict[str, Any]) -> bool:
        """True when the published result was computed from exactly `record`."""
        return analysis_inputs(root, self.output) == record

    @classmethod
    def model_columns(cls, result: xr.Dataset) -> xr.Dataset:
        """The per-model (arch, seed) values of `columns` and of `errors`' `_se`/`_n` for the stats table: the mean
        over mice where per mouse, the encoder output's where per space (the cross-model endpoints' space); a
        column the result lacks is left out."""
        names = [c for cols in cls.columns.values() for c in cols]
        names += [f"{c}_{k}" for c in cls.errors for k in ("se", "n")]
        out = {}
        for c in (c for c in names if c in result):
            da = result[c].mean("mouse") if "mouse" in result[c].dims else result[c]
            out[c] = da.sel(space="encoder", drop=True) if "space" in da.dims else da
        return xr.Dataset(out)

    def published(self, found: dict[str, xr.Dataset | None], section: Section,
                  sections: list[Section]) -> xr.Dataset | None:
        """This assay's result from `found`, loaded; None when it is not published, after appending `section` with
        a note saying how to make it."""
        ds = found.get(self.output)
        if ds is None:
            section.notes.append(f"analysis/{self.output}.zarr not found: run `actstore analyze {self.name}` to draw "
                                 "this.")
            sections.append(section)
            return None
        return ds.compute()

    def report(self, found: dict[str, xr.Dataset | None], sections: list[Section],
               figures: dict[str, Figure]) -> None:
        """Append this assay's report sections (and their figures by section key) from the published results by
        output name; none by default."""


def reconcile(assay: Assay, catalog: Catalog, root: str) -> list[str]:
    """Bring analysis/<output>.zarr up to date: nothing when it records the current inputs, else compute and publish."""
    sources = assay.open(catalog, root)
    why = assay.skip(sources)
    if why is not None:
        return [f"{assay.name}: {why}"]
    record = assay.record(sources)
    if assay.current(root, record):
        return [f"{assay.name}: up to date"]
    result, lines = assay.compute(sources)
    return [*lines, *assay.publish(result, root, record)]


def state(assay: Assay, catalog: Catalog, root: str) -> str:
    """'up to date', 'stale' (inputs changed since it was computed), 'missing' or the skip reason, without
    computing anything."""
    sources = assay.open(catalog, root)
    why = assay.skip(sources)
    if why is not None:
        return why
    if analysis_inputs(root, assay.output) is None:
        return "missing"
    return "up to date" if assay.current(root, assay.record(sources)) else "stale"
