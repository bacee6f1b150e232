"""A safe expression language over the units table: `actstore query EXPR` and `actstore.query(...)`; an
expression (or column list) naming a column only the neurons table has (NEURON_COLUMNS) runs over that table.

Expressions are parsed with Python's `ast` and evaluated by walking a whitelist of nodes
(never `eval`): comparisons (chains too), `&`, `|`, `~`, `and`, `or`, `not`, `in`/`not in` a
list, arithmetic on columns, numbers, strings and booleans. As in pandas, `&` and `|` bind
like `and` and `or`, so `arch == 'alexnet' & qc_sf` means what it reads as.
"""
from __future__ import annotations

import ast
import difflib
import io
import operator
import tokenize
from typing import Any

import numpy as np
import pandas as pd

from actstore.errors import UserError
from actstore.table import KEYS, NEURON_KEYS, neurons, units

NEURON_COLUMNS = ("mouse", "neuron", "neuron_r", "neuron_ceiling", "neuron_ceiling_fraction")

ALLOWED = ("comparisons (== != < <= > >=), &, |, ~, and, or, not, in [list], arithmetic (+ - * / // % **) "
           "on columns, numbers, strings and booleans")
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_LOGICAL = {"&": "and", "|": "or"}
_FORBIDDEN = {  # in the order they are reported when an expression has several
    ast.Attribute: "attribute access", ast.Lambda: "lambdas", ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "assignments", ast.IfExp: "conditional expressions", ast.Dict: "dicts",
    ast.JoinedStr: "f-strings", ast.Starred: "starred expressions", ast.Await: "await", ast.Yield: "yield",
    ast.YieldFrom: "yield", ast.Subscript: "subscripts", ast.Call: "function calls"}


def query(expr: str, root: str = "stores", columns: list[str] | None = None,
          activations: str | None = None) -> pd.DataFrame | Any:
    """The units matching `expr` (a DataFrame of `columns`, default all), or, with `activations` naming a
    stimulus store, those units' encoder activations as a lazy xr.DataArray (dim `match`). An expression that
    names a neuron column (NEURON_COLUMNS) selects recorded neurons from the neurons table instead. An empty
    result names, in attrs["absent"], each string the expression asks a column for that it never holds."""
    named = {n.id for n in ast.walk(parse(expr)) if isinstance(n, ast.Name)} | set(columns or ())
    by_neuron = bool(named & set(NEURON_COLUMNS))
    if by_neuron and activations is not None:
        raise UserError("query: activations are read for units; this query names neuron columns "
                        f"({', '.join(sorted(named & set(NEURON_COLUMNS)))})")
    table, keys = (neurons(root), NEURON_KEYS) if by_neuron else (units(root), KEYS)
    selected = table[evaluate(expr, table)]
    if selected.empty:  # carried to write_rows and the CLI: why nothing matched, when a string is not in its column
        selected.attrs["absent"] = absent_values(expr, table)
    if activations is not None:
        return matching_activations(selected, activations, root)
    if columns:
        check_columns(columns, table.columns)
        selected = selected[[*keys, *[c for c in columns if c not in keys]]]
    return selected.reset_index(drop=True)


def evaluate(expr: str, table: pd.DataFrame) -> pd.Series:
    """The boolean row mask of `expr` over `table`; UserError for anything outside the language."""
    tree = parse(expr)
    value = _eval(tree.body, table)
    if np.isscalar(value) and isinstance(value, (bool, np.bool_)):
        return pd.Series(bool(value), index=table.index)
    if not isinstance(value, pd.Series) or not pd.api.types.is_bool_dtype(value.dtype):
        raise UserError(f"query {expr!r}: does not give True/False per unit (try a comparison, e.g. gosi > 0.3)")
    return value.fillna(False).astype(bool)


def parse(expr: str) -> ast.Expression:
    """Parse with `&`/`|` at the precedence of `and`/`or`, then check every node against the whitelist."""
    if not isinstance(expr, str) or not expr.strip():
        raise UserError("query: empty expression; example: \"arch == 'alexnet' & qc_orientation\"")
    try:
        toks = [(tokenize.NAME, f" {_LOGICAL[t.string]} ") if t.type == tokenize.OP and t.string in _LOGICAL
                else (t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(expr.strip()).readline)]
        tree = ast.parse(tokenize.untokenize(toks).strip(), mode="eval")
    except (SyntaxError, tokenize.TokenError) as e:
        raise UserError(f"query {expr!r}: not a valid expression ({getattr(e, 'msg', e)}); allowed: {ALLOWED}") from None
    nodes = list(ast.walk(tree))
    for kind, label in _FORBIDDEN.items():
        node = next((n for n in nodes if isinstance(n, kind)), None)
        if node is not None:
            raise UserError(f"query {expr!r}: {label} not allowed ({ast.unparse(node)}); allowed: {ALLOWED}")
    for node in nodes:
        if isinstance(node, ast.Name) and node.id.startswith("__"):
            raise UserError(f"query {expr!r}: dunder names not allowed ({node.id}); allowed: {ALLOWED}")
    return tree


def _eval(node: ast.AST, table: pd.DataFrame) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (bool, int, float, str)):
        return node.value
    if isinstance(node, ast.Name):
        check_columns([node.id], table.columns)
        return table[node.id]
    if isinstance(node, ast.BoolOp):
        values = [_truth(_eval(v, table)) for v in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, table)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return ~_truth(value) if isinstance(value, pd.Series) else not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
        return _ARITH[type(node.op)](_eval(node.left, table), _eval(node.right, table))
    if isinstance(node, ast.Compare):
        out, left = True, _eval(node.left, table)
        for op, comp in zip(node.ops, node.comparators):
            right = _members(comp) if isinstance(op, (ast.In, ast.NotIn)) else _eval(comp, table)
            if isinstance(op, (ast.In, ast.NotIn)):
                hit = left.isin(right) if isinstance(left, pd.Series) else left in right
                step = ~hit if isinstance(op, ast.NotIn) else hit
            elif type(op) in _COMPARE:
                step = _COMPARE[type(op)](left, right)
            else:
                raise UserError(f"query: operator {ast.unparse(node)!r} is not allowed; allowed: {ALLOWED}")
            out, left = out & step, right
        return out
    raise UserError(f"query: {ast.unparse(node)!r} is not allowed; allowed: {ALLOWED}")


def absent_values(expr: str, table: pd.DataFrame) -> list[str]:
    """One line per string that `expr` requires a text column to equal (==, in) and that the column never holds,
    with the closest values it does hold: a misspelt arch or space is why most empty queries match nothing."""
    lines = []
    for node in ast.walk(parse(expr)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if not isinstance(op, (ast.Eq, ast.In)):
                continue
            for column, other in ((left, right), (right, left)):
                if not (isinstance(column, ast.Name) and column.id in table.columns
                        and not pd.api.types.is_numeric_dtype(table[column.id].dtype)):
                    continue
                wanted = _members(other) if isinstance(op, ast.In) and other is right else (
                    [other.value] if isinstance(other, ast.Constant) else [])
                held = sorted({str(v) for v in table[column.id].dropna()})
                for value in (v for v in wanted if isinstance(v, str) and v not in held):
                    close = difflib.get_close_matches(value, held, n=3, cutoff=0.6)
                    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
                    shown = ", ".join(held[:12]) + (", ..." if len(held) > 12 else "")
                    count = f"{len(held)} value" + ("s" if len(held) != 1 else "")
                    lines.append(f"{column.id} holds no {value!r}; {hint}it holds {count}: {shown}")
    return lines


def _members(node: ast.AST) -> list:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, (bool, int, float, str)) for e in node.elts):
        return [e.value for e in node.elts]
    raise UserError(f"query: `in` needs a list of numbers, strings or booleans, e.g. arch in ['alexnet', "
                    f"'resnet18']; got {ast.unparse(node)}")


def _truth(value: Any) -> Any:
    """A boolean Series (missing values are False) or a plain bool."""
    if isinstance(value, pd.Series):
        if not pd.api.types.is_bool_dtype(value.dtype):
            raise UserError(f"query: column {value.name!r} is not True/False; compare it, e.g. {value.name} > 0")
        return value.fillna(False).astype(bool)
    return bool(value)


def check_columns(names: list[str], valid: pd.Index) -> None:
    """UserError naming the first unknown column with the closest valid ones."""
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UserError(f"query: unknown column {name!r}; {hint}valid columns: {', '.join(valid)}")


def matching_activations(selected: pd.DataFrame, store: str, root: str) -> Any:
    """The activations of the selected units (all of one space) from stimulus store `store`, lazily, one `match`
    per row."""
    import xarray as xr

    from actstore import open_store

    spaces = sorted(set(selected["space"]))
    if len(spaces) > 1:
        raise UserError(f"query: the matching units lie in spaces {', '.join(spaces)}; activations are read from one "
                        "space at a time: add e.g. space == 'encoder' to the query")
    ds = open_store(store, root)
    space = spaces[0] if spaces else "encoder"
    if space not in ds.attrs["spaces"]:
        raise UserError(f"query: store {store} has no space {space!r}; its spaces: {', '.join(ds.attrs['spaces'])}")
    values = ds[space].rename({ds.attrs["spaces"][space][-1]: "unit"})
    pick = {k: xr.DataArray(selected[k].to_numpy(), dims="match") for k in KEYS if k != "space"}
    return values.sel(**pick).transpose(..., "match")


FORMATS = ("table", "csv", "json", "parquet")


def nothing_matched(rows: pd.DataFrame) -> str:
    """'no units match', or 'no neurons match' for a result of the neurons table."""
    return f"no {'neurons' if 'neuron' in rows.columns else 'units'} match"


def write_rows(rows: pd.DataFrame, fmt: str = "table", out: str | None = None) -> str | None:
    """Rows as a table, CSV, JSON (records) or Parquet: written to `out`, or returned as text for stdout."""
    if fmt not in FORMATS:
        raise UserError(f"query: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None:
            raise UserError("query: --format parquet needs --out FILE (Parquet is binary)")
        rows.to_parquet(out, index=False)
        return None
    if fmt == "table":
        why = "".join(f"; {line}" for line in rows.attrs.get("absent", []))
        text = (rows.to_string(index=False) if len(rows)
                else f"({nothing_matched(rows)}{why}; columns: {', '.join(rows.columns)})")
    elif fmt == "csv":
        text = rows.to_csv(index=False)
    else:
        text = rows.to_json(orient="records", indent=1)
    if out is None:
        return text
    with open(out, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return None
