"""The queuelab command: clear output, clear errors, no tracebacks, no passwords."""

import subprocess
import sys
from pathlib import Path

import pytest

from queuelab import cli
from queuelab.servers import free_port


def test_brokers_prints_where_each_broker_came_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["brokers"]) == 0
    out = capsys.readouterr().out
    assert "rabbitmq" in out
    assert "redis" in out
    assert "guest:***@" in out
    assert "guest:guest" not in out


def test_an_unreachable_broker_is_one_line_without_traceback_or_password() -> None:
    url = f"amqp://admin:hunter2@127.0.0.1:{free_port()}/"
    result = subprocess.run(
        [sys.executable, "-m", "queuelab.cli", "brokers", "--amqp-url", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("queuelab: error: rabbitmq")
    assert "admin:***@" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_run_with_no_notebooks_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--notebooks", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["run", "--notebooks", str(tmp_path)]) == 2
    assert "named NN_name.ipynb" in capsys.readouterr().err
    assert cli.main(["run", "--only", "zzz"]) == 2
    assert "--only zzz matched no notebook" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["afile", "afile/sub", "notebooks"])
def test_run_refuses_a_report_folder_it_cannot_or_must_not_write(
    out: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "00_x.ipynb").write_text("{}")
    code = cli.main(["run", "--notebooks", str(folder), "--out", str(tmp_path / out)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("queuelab: error:")
    assert "Traceback" not in err
