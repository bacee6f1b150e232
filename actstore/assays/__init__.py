"""The assay registry: every module of this package but `base` and `inputs` defines one Assay subclass, found
here by discovery, so a new assay is one new module. Each reads stores or analyses lazily and writes
analysis/<name>.zarr through `base.reconcile` (up to date: nothing is done)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from actstore.errors import UserError

if TYPE_CHECKING:
    from actstore.assays.base import Assay
    from actstore.catalog import Catalog

HELPERS = ("base", "inputs")


def names() -> list[str]:
    """Every registered assay's name, without importing any (the CLI's choices); the module is the name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in HELPERS)


def assay_classes() -> list[type[Assay]]:
    """Every assay class, in run (and report) order: by `position`."""
    from actstore.assays.base import Assay

    found = []
    for name in names():
        module = importlib.import_module(f"{__name__}.{name}")
        found += [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Assay)
                  and c is not Assay and c.__module__ == module.__name__]
    return sorted(found, key=lambda c: c.position)


def registry(catalog: Catalog) -> list[Assay]:
    """Every assay with the catalog's parameters, in run order."""
    return [cls.from_catalog(catalog) for cls in assay_classes()]


def run(catalog: Catalog, root: str, what: str = "all") -> list[str]:
    """Reconcile one assay, or every one in order for what == 'all'; summary lines."""
    from actstore.assays.base import reconcile

    chosen = [a for a in registry(catalog) if what in ("all", a.name)]
    if not chosen:
        raise UserError(f"analyze: unknown assay {what!r}; valid: {', '.join(names())}, all")
    return [line for assay in chosen for line in reconcile(assay, catalog, root)]
