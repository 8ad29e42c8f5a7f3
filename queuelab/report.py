"""The main job: execute the course notebooks headless and write a report.

Each notebook runs in a fresh kernel through nbclient, with the brokers found
once by the caller and handed to every kernel through the environment. The
report folder gets each executed notebook (.ipynb and .html), every figure as
a PNG, and ``index.html`` listing notebook, status, run time and figures. A
failing notebook is still written, and the error names it and its cell.
"""

import base64
import html
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter
from tqdm.auto import tqdm
from traitlets.config import Config

from queuelab.errors import NotebookError

log = logging.getLogger(__name__)

DEFAULT_CELL_TIMEOUT_S = 600


@dataclass
class NotebookRun:
    """How one notebook went."""

    name: str
    ok: bool
    seconds: float
    html: Path
    figures: list[Path] = field(default_factory=list)
    error: str = ""


def find_notebooks(folder: Path) -> list[Path]:
    """The course notebooks in order (exercises are run by the tests)."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def run_notebooks(
    notebooks: Sequence[Path],
    out: Path,
    *,
    env: Mapping[str, str] | None = None,
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S,
    progress: bool = True,
) -> list[NotebookRun]:
    """Execute each notebook and write its outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    runs = []
    saved_env = dict(os.environ)
    # Progress bars belong to the terminal running the report, not inside the
    # executed notebooks (where they would be text noise in the HTML).
    os.environ.update({"TQDM_DISABLE": "1", **(env or {})})
    bars = None if progress else True  # None: shown on a terminal only
    try:
        for path in tqdm(notebooks, desc="notebooks", unit="nb", disable=bars):
            runs.append(_run_one(path, out, cell_timeout_s, bars))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    return runs


def failure_message(runs: Sequence[NotebookRun]) -> str:
    """One line per failed notebook; empty when all passed."""
    return "\n".join(run.error for run in runs if not run.ok)


def raise_for_failures(runs: Sequence[NotebookRun]) -> None:
    message = failure_message(runs)
    if message:
        raise NotebookError(message)


def write_index(
    runs: Sequence[NotebookRun], out: Path, brokers: Sequence[Mapping[str, str]]
) -> Path:
    """``index.html``: brokers used, then each notebook with its figures."""
    rows = []
    for run in runs:
        status = "ok" if run.ok else "FAILED"
        figures = "".join(
            f'<figure><a href="{f.relative_to(out)}"><img src="{f.relative_to(out)}" '
            f'height="160" alt="{f.stem}"></a><figcaption>{_caption(f)}</figcaption>'
            "</figure>"
            for f in run.figures
        )
        error = f"<pre>{html.escape(run.error)}</pre>" if run.error else ""
        rows.append(
            f'<tr class="{status}"><td><a href="{run.html.name}">{run.name}</a></td>'
            f"<td>{status}</td><td>{run.seconds:.1f} s</td>"
            f"<td>{figures}{error}</td></tr>"
        )
    broker_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in b.values()) + "</tr>"
        for b in brokers
    )
    broker_head = "".join(f"<th>{k}</th>" for k in (brokers[0] if brokers else {}))
    page = _PAGE.format(
        when=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        passed=sum(r.ok for r in runs),
        total=len(runs),
        broker_head=broker_head,
        broker_rows=broker_rows,
        rows="\n".join(rows),
    )
    index = out / "index.html"
    index.write_text(page)
    return index


def _tick(executed: list[int], bar: tqdm) -> None:  # type: ignore[type-arg]
    executed.append(1)
    bar.update()


def _caption(figure: Path) -> str:
    cell = figure.stem.rsplit("-cell", 1)[-1].split("-")[0]
    return f"code cell {int(cell)}" if cell.isdigit() else figure.stem


def _run_one(
    path: Path, out: Path, cell_timeout_s: int, bars: bool | None
) -> NotebookRun:
    html_path = out / f"{path.stem}.html"
    try:
        notebook = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        error = f"notebook {path.name} is not a valid notebook: {exc}".splitlines()[0]
        html_path.write_text(f"<pre>{html.escape(error)}</pre>")
        return NotebookRun(path.name, False, 0.0, html_path, [], error)

    code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
    executed: list[int] = []
    bar = tqdm(total=code_cells, desc=path.stem, unit="cell", leave=False, disable=bars)

    # The kernel talks over Unix sockets in a private folder: nothing listens
    # on TCP, and the kernel has no "running over TCP without encryption" to say.
    sockets = tempfile.TemporaryDirectory(prefix="queuelab-kernel-")
    ipc = {"transport": "ipc", "ip": str(Path(sockets.name) / "kernel")}
    client = NotebookClient(
        notebook,
        config=Config({"KernelManager": ipc}),
        kernel_name="python3",
        timeout=cell_timeout_s,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=lambda **_: _tick(executed, bar),
    )
    started = time.monotonic()
    error = ""
    try:
        client.execute()
    except CellTimeoutError:
        error = (
            f"notebook {path.name}: code cell {len(executed) + 1} timed out after "
            f"{cell_timeout_s} s"
        )
    except (CellExecutionError, DeadKernelError) as exc:
        error = _describe_failure(path, notebook, exc)
        log.debug("notebook %s failed", path.name, exc_info=True)
    finally:
        bar.close()
        sockets.cleanup()
    seconds = time.monotonic() - started

    nbformat.write(notebook, out / path.name)
    exporter = HTMLExporter()
    exporter.log.setLevel(logging.ERROR)  # not a warning per figure without alt text
    body, _ = exporter.from_notebook_node(notebook)
    html_path.write_text(body)
    figures = _save_figures(notebook, out / "figures", path.stem)
    return NotebookRun(path.name, not error, seconds, html_path, figures, error)


def _describe_failure(
    path: Path, notebook: nbformat.NotebookNode, exc: Exception
) -> str:
    code_index = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return (
                    f"notebook {path.name} failed at code cell {code_index} "
                    f"(execution count {cell.get('execution_count')}): "
                    f"{output.get('ename')}: {output.get('evalue')}"
                )
    return f"notebook {path.name} failed: {type(exc).__name__}: {exc}".splitlines()[0]


def _save_figures(
    notebook: nbformat.NotebookNode, folder: Path, stem: str
) -> list[Path]:
    """Every PNG output, named by code cell number, as failures count cells."""
    saved: list[Path] = []
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell_no, cell in enumerate(code_cells, start=1):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            path = folder / f"{stem}-cell{cell_no:02d}-{len(saved) + 1}.png"
            path.write_bytes(base64.b64decode(data["image/png"]))
            saved.append(path)
    return saved


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>queuelab report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: .4em .6em; vertical-align: top; }}
tr.FAILED td {{ background: #fdd; }}
img {{ border: 1px solid #eee; }}
figure {{ display: inline-block; margin: 4px; text-align: center; font-size: 80%; }}
</style></head><body>
<h1>queuelab report</h1>
<p>Generated {when}: {passed} of {total} notebooks ran without error.
Each notebook was executed headless against the brokers below; click a
notebook for its full output, a figure for its full size.</p>
<h2>Brokers</h2>
<table><tr>{broker_head}</tr>{broker_rows}</table>
<h2>Notebooks</h2>
<table><tr><th>notebook</th><th>status</th><th>run time</th><th>figures</th></tr>
{rows}
</table></body></html>
"""
