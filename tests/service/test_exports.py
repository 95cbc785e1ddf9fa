from __future__ import annotations

import io
import math

import pandas as pd

from service.exports import _csv_lines


def test_csv_streams_in_chunks_and_reads_back_exactly() -> None:
    n = 20_000
    columns = {
        "dynamics": ["gd"] * n,
        "step": list(range(n)),
        "x": [math.pi * i / 7 for i in range(n - 2)] + [None, math.inf],
    }
    chunks = list(_csv_lines(columns))
    assert len(chunks) > 2  # streamed, not one string
    frame = pd.read_csv(io.StringIO("".join(chunks)))
    assert frame["step"].tolist() == columns["step"]
    assert frame["x"].iloc[: n - 2].tolist() == columns["x"][: n - 2]  # exact floats
    assert math.isnan(frame["x"].iloc[n - 2]) and frame["x"].iloc[n - 1] == math.inf
