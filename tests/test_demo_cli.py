"""`bulkmover demo` refuses bad values with one line, before starting or deleting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkmover.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    code = info.value.code
    assert isinstance(code, int)
    return code, err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--studies", "0"], "--studies"),
        (["--studies", "-3"], "--studies"),
        (["--studies", "100000000000000000000000"], "--studies"),
        (["--bad-files", "-1"], "--bad-files"),
    ],
)
def test_bad_counts_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], expected: str
) -> None:
    data_dir = tmp_path / "demo"
    code, err = run_cli(capsys, "demo", "--data-dir", str(data_dir), *flags)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert not data_dir.exists()  # nothing created before the values were checked


def test_data_dir_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    code, err = run_cli(capsys, "demo", "--studies", "1", "--data-dir", str(afile))
    assert code == 2
    assert err.count("\n") == 1 and "is a file" in err and str(afile) in err
    assert afile.read_text() == "keep me\n"


def test_data_dir_under_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    code, err = run_cli(capsys, "demo", "--studies", "1", "--data-dir", str(afile / "demo"))
    assert code == 2
    assert err.count("\n") == 1 and "cannot prepare --data-dir" in err


def test_data_dir_that_is_not_a_demo_is_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "precious.txt").write_text("x")
    code, err = run_cli(capsys, "demo", "--studies", "1", "--data-dir", str(tmp_path))
    assert code == 2 and "is not a demo directory" in err
    assert (tmp_path / "precious.txt").exists()
