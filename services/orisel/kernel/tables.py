"""Column tables written as CSV or Parquet (pyarrow), the two formats users ask for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from orisel.kernel.errors import InvalidArgument

# pyarrow is imported where tables are read or written: front ends only name the format.

TableFormat = Literal["csv", "parquet"]


def write_table(columns: Mapping[str, np.ndarray], path_stem: Path, fmt: TableFormat) -> Path:
    """Write equal-length columns to `<path_stem>.csv` or `.parquet`; return the path."""
    if fmt not in ("csv", "parquet"):
        raise InvalidArgument("format", "csv or parquet", fmt)
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table({k: pa.array(v) for k, v in columns.items()})
    path = path_stem.with_suffix(f".{fmt}")
    if fmt == "csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


# Names, never numbers, even when a layer is called "1" (an nn.Sequential's child).
NAME_COLUMNS = ("stimulus", "layer", "site", "order", "ablated_layer", "condition")


def read_table(path: Path) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        table = pq.read_table(path)
    else:
        names = pacsv.ConvertOptions(column_types={c: pa.string() for c in NAME_COLUMNS})
        table = pacsv.read_csv(path, convert_options=names)
    return {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
