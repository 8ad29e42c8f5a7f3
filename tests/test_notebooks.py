"""The course notebooks run headless; a failing one is named with its cell."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from queuelab import cli
from queuelab.report import find_notebooks, run_notebooks, write_index

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
COURSE = find_notebooks(NOTEBOOKS)

pytestmark = pytest.mark.slow


def test_the_course_has_its_first_notebooks() -> None:
    names = [path.stem for path in COURSE]
    assert names[:2] == ["00_brokers", "01_producer_consumer"]


@pytest.mark.parametrize("path", COURSE, ids=[p.stem for p in COURSE])
def test_course_notebook_runs_and_draws_its_figures(path: Path, tmp_path: Path) -> None:
    [run] = run_notebooks([path], tmp_path, progress=False)
    assert run.ok, run.error
    assert run.figures, "the notebook drew no figure"
    assert all(f.stat().st_size > 1000 for f in run.figures)
    assert (tmp_path / f"{path.stem}.html").exists()


def test_committed_notebooks_have_no_outputs() -> None:
    for path in NOTEBOOKS.rglob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} is committed with outputs"
                assert cell.execution_count is None, path.name


def test_a_failing_notebook_is_named_with_its_cell_and_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = new_notebook(
        cells=[
            new_code_cell("x = 1"),
            new_code_cell("raise ValueError('poison')"),
            new_code_cell("y = 2"),
        ]
    )
    nbformat.write(notebook, folder / "09_broken.ipynb")
    out = tmp_path / "report"

    code = cli.main(["run", "--notebooks", str(folder), "--out", str(out)])

    assert code == 1
    err = capsys.readouterr().err
    assert "09_broken.ipynb failed at code cell 2" in err
    assert "ValueError: poison" in err
    index = (out / "index.html").read_text()
    assert "FAILED" in index
    assert (out / "09_broken.html").exists()


def test_a_broken_notebook_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "05_broken.ipynb"
    path.write_text("{ not json")
    [run] = run_notebooks([path], tmp_path / "out", progress=False)
    assert not run.ok
    assert "05_broken.ipynb is not a valid notebook" in run.error


def test_a_cell_that_runs_too_long_is_named_as_a_timeout(tmp_path: Path) -> None:
    path = tmp_path / "06_slow.ipynb"
    cells = [new_code_cell("x = 1"), new_code_cell("import time; time.sleep(30)")]
    nbformat.write(new_notebook(cells=cells), path)
    [run] = run_notebooks([path], tmp_path / "out", cell_timeout_s=2, progress=False)
    assert not run.ok
    assert "code cell 2 timed out after 2 s" in run.error


def test_index_lists_each_notebook_with_status_time_and_figures(tmp_path: Path) -> None:
    from queuelab.report import NotebookRun

    figure = tmp_path / "figures" / "a-cell01-1.png"
    figure.parent.mkdir()
    figure.write_bytes(b"png")
    runs = [
        NotebookRun("a.ipynb", True, 1.25, tmp_path / "a.html", [figure]),
        NotebookRun("b.ipynb", False, 0.5, tmp_path / "b.html", [], "b failed"),
    ]
    page = write_index(
        runs, tmp_path, [{"broker": "redis", "url": "redis://x"}]
    ).read_text()
    for expected in ("a.ipynb", "1.2 s", "figures/a-cell01-1.png", "b failed"):
        assert expected in page
    assert "1 of 2 notebooks ran without error" in page


def test_figures_are_named_by_code_cell_like_failures(tmp_path: Path) -> None:
    path = tmp_path / "07_fig.ipynb"
    cells = [
        new_markdown_cell("# A title, not counted"),
        new_code_cell("import matplotlib.pyplot as plt"),
        new_markdown_cell("Some prose."),
        new_code_cell(
            "plt.plot([1, 2], [3, 4]); plt.xlabel('x (s)'); plt.ylabel('y (m)')"
        ),
    ]
    nbformat.write(new_notebook(cells=cells), path)
    [run] = run_notebooks([path], tmp_path / "out", progress=False)
    assert run.ok, run.error
    assert [f.name for f in run.figures] == ["07_fig-cell02-1.png"]
