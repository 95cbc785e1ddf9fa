"""The CLI's human tables (rich), the same for every command that prints one."""

from __future__ import annotations

from collections.abc import Sequence

import typer


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on stdout (rich): a header line, then a line per row, columns aligned, never wrapped or cut
    (long ids stay whole, so the output can be read back by a script or grep), no trailing blanks."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", highlight=False)
    for name in header:
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    console = Console(highlight=False, width=max(Console().width, sum(widths) + 2 * len(widths)))
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())
