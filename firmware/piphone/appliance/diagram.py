"""`piphone diagram`: the phone's transition table drawn by transitions' graphviz extension."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PiphoneError
from .table import STATES, machine_rows

TEXT_SUFFIXES = (".dot", ".gv")


class _Model:
    """The diagram needs the table's shape only, not a working phone."""

    if TYPE_CHECKING:
        def get_graph(self) -> Any: ...  # added by GraphMachine


def graph() -> Any:
    """A graphviz Digraph of the table (conditions on the edges)."""
    try:
        import graphviz  # noqa: F401  (transitions only says so when it draws)
        from transitions.extensions import GraphMachine

        model = _Model()
        # Rows that apply in every state ("*": DND, volume, errors) would loop on each node:
        # the title names them instead.
        rows = [row for row in machine_rows() if row["source"] != "*"]
        everywhere = sorted({row["trigger"] for row in machine_rows() if row["source"] == "*"})
        GraphMachine(model=model, states=list(STATES), transitions=rows,
                     initial="idle", auto_transitions=False, show_conditions=True,
                     graph_engine="graphviz",
                     title=f"piphone (in every state: {', '.join(everywhere)})")
        return model.get_graph()
    except ImportError as exc:
        raise PiphoneError(f"drawing needs the graphviz Python package ({exc}); install it "
                           "with `pip install graphviz` (and Debian's graphviz for images)"
                           ) from None


def draw(path: Path | None) -> str | None:
    """The DOT source if ``path`` is None or ends .dot/.gv (written there); else render an
    image whose format is the suffix (svg, png, pdf) with graphviz's ``dot``."""
    dot = graph()
    source: str = dot.source
    if path is None:
        return source
    if path.suffix in TEXT_SUFFIXES:
        path.write_text(source)
        return None
    import graphviz

    try:
        path.write_bytes(dot.pipe(format=path.suffix.lstrip(".") or "svg"))
    except graphviz.ExecutableNotFound:
        raise PiphoneError("graphviz's `dot` program is missing (apt-get install graphviz); "
                           f"or write DOT source with -o {path.with_suffix('.dot')}") from None
    except (ValueError, graphviz.CalledProcessError) as exc:
        raise PiphoneError(f"cannot draw {path}: {exc}") from None
    return None
