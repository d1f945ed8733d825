"""Result tables for photos and videos: rows -> CSV, JSON, JSON Lines or Parquet, written atomically.

:class:`TableWriter` takes rows one at a time, so a long video's table never sits in memory
(Parquet rows are buffered ``batch_rows`` at a time). The file appears under its name only when
the writer closes without an error; until then it is a hidden temporary file beside it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FerkitError
from ..io import atomic_open

#: Supported formats and their file suffixes.
TABLE_FORMATS: dict[str, str] = {"csv": ".csv", "json": ".json", "jsonl": ".jsonl", "parquet": ".parquet"}


def table_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """``fmt``, or the format that ``path``'s suffix names; a ValueError names the valid ones."""
    if fmt is None:
        fmt = next((name for name, suffix in TABLE_FORMATS.items() if Path(path).suffix.lower() == suffix), None)
        if fmt is None:
            raise ValueError(f"{path}: cannot tell the table format from the suffix; "
                             f"use one of {', '.join(TABLE_FORMATS.values())}")
    if fmt not in TABLE_FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; valid formats: {', '.join(TABLE_FORMATS)}")
    return fmt


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones; NaN as None (JSON has no NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def infer_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, type]:
    """Column name -> type (int, float, bool or str) from the rows' first non-None values, in first-seen order."""
    types: dict[str, type] = {}
    for row in rows:
        for key, value in row.items():
            value = _plain(value)
            if types.get(key) in (None, type(None)):
                types[key] = type(value)
            elif types[key] is int and isinstance(value, float):
                types[key] = float
    return {k: t if t in (int, float, bool, str) else str for k, t in types.items()}


def arrow_schema(columns: Mapping[str, type]):
    """The Arrow schema of a table with these columns (int -> int64, float -> float64, bool, str -> string)."""
    import pyarrow as pa

    types = {int: pa.int64(), float: pa.float64(), bool: pa.bool_(), str: pa.string()}
    return pa.schema([(name, types.get(t, pa.string())) for name, t in columns.items()])


class TableWriter:
    """Write rows to ``path`` one at a time, atomically; use as a context manager.

    ``columns`` maps each column to its type (int, float, bool, str), which fixes the column
    order and the Parquet schema; a row may leave columns out (written as empty / null) but
    may not add any. ``fmt`` defaults to the format the suffix names (:data:`TABLE_FORMATS`).

    >>> with TableWriter("frames.csv", {"frame": int, "label": str}) as table:
    ...     table.write({"frame": 0, "label": "happy"})
    """

    def __init__(self, path: str | os.PathLike, columns: Mapping[str, type], fmt: str | None = None,
                 *, batch_rows: int = 1024) -> None:
        self.path = Path(path)
        self.format = table_format(self.path, fmt)
        self.columns = dict(columns)
        if not self.columns:
            raise ValueError("a table needs at least one column")
        self.batch_rows = max(1, int(batch_rows))
        self.rows_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._text: io.TextIOWrapper | None = None
        self._csv: csv.DictWriter | None = None
        self._parquet = None
        self._schema = None
        self._batch: list[dict[str, Any]] = []

    def __enter__(self) -> TableWriter:
        pq = self._import_pyarrow() if self.format == "parquet" else None
        self._stack = contextlib.ExitStack()
        handle = self._stack.enter_context(atomic_open(self.path, "wb"))
        if pq is not None:
            self._schema = arrow_schema(self.columns)
            self._parquet = pq.ParquetWriter(handle, self._schema)
            return self
        self._text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        if self.format == "csv":
            self._csv = csv.DictWriter(self._text, fieldnames=list(self.columns))
            self._csv.writeheader()
        elif self.format == "json":
            self._text.write("[")
        return self

    @staticmethod
    def _import_pyarrow():
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise FerkitError("writing Parquet needs pyarrow: pip install 'ferkit[parquet]' "
                              "(or choose --format csv, json or jsonl)") from None
        return pq

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row."""
        if self._stack is None:
            raise RuntimeError("use TableWriter as a context manager: with TableWriter(...) as table: ...")
        extra = [k for k in row if k not in self.columns]
        if extra:
            raise ValueError(f"{self.path}: row has columns the table does not: {extra}")
        row = {k: _plain(row.get(k)) for k in self.columns}
        if self._parquet is not None:
            self._batch.append(row)
            if len(self._batch) >= self.batch_rows:
                self._flush_parquet()
        elif self._csv is not None:
            self._csv.writerow(row)
        else:
            text = json.dumps(row, ensure_ascii=False)
            if self.format == "json":
                text = ("\n" if self.rows_written == 0 else ",\n") + text
            self._text.write(text if self.format == "json" else text + "\n")
        self.rows_written += 1

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append each of ``rows``."""
        for row in rows:
            self.write(row)

    def _flush_parquet(self) -> None:
        import pyarrow as pa

        if self._batch:
            self._parquet.write_table(pa.Table.from_pylist(self._batch, schema=self._schema))
            self._batch = []

    def _finish(self) -> None:
        if self._parquet is not None:
            self._flush_parquet()
            self._parquet.close()
        elif self._text is not None:
            if self.format == "json":
                self._text.write("\n]\n" if self.rows_written else "]\n")
            self._text.flush()
            self._text.detach()  # the atomic file's handle is closed (and renamed) by atomic_open

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        if exc_type is None:
            try:
                self._finish()
                return bool(stack.__exit__(None, None, None))
            except BaseException as err:
                exc_type, exc, tb = type(err), err, err.__traceback__
        with contextlib.suppress(Exception):  # let go of the temporary file before it is removed
            if self._parquet is not None:
                self._parquet.close()
            elif self._text is not None:
                self._text.detach()
        stack.__exit__(exc_type, exc, tb)  # removes the temporary file and re-raises the error
        if exc is not None:
            raise exc
        return False


def write_table(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], fmt: str | None = None,
                columns: Mapping[str, type] | None = None) -> Path:
    """Write all ``rows`` to ``path`` atomically; the columns and their types come from the rows if not given."""
    columns = columns or infer_columns(rows)
    with TableWriter(path, columns, fmt) as table:
        table.write_rows(rows)
    return Path(path)
