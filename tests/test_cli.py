"""CLI behaviour: listing, info, and one-line errors with exit code 2 (never a traceback)."""

import os
import subprocess
import sys

import pytest

from kerasvk.cli import main


def test_list_and_info(capsys):
    assert main(["list", "--task", "classification"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "vgg16" in out
    assert main(["info", "lenet5"]) == 0
    assert '"parameters": 61706' in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["info", "lenet"], "Unknown model name 'lenet'"),
        (["train", "lenet5", "--epochs", "0"], "expected a positive integer"),
        (["train", "lenet5", "--data", "nope"], "Unknown data source 'nope'"),
        (["train", "lenet5", "--optimizer", "adagrad-x", "--epochs", "1"], "Unknown optimizer"),
        (["evaluate", "/nonexistent/run"], "Run folder not found"),
        (["check-export", "/nonexistent/export"], "No SavedModel"),
        (["frobnicate"], "invalid choice"),
        (["list", "--task", "segmentation"], "Unknown task"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kerasvk: error:") and match in err
    assert "\n" not in err and "Traceback" not in err


def test_console_script_error_has_no_traceback():
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "kerasvk.cli", "train", "lenet5", "--data", "digitz"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Did you mean digits" in lines[0]


def test_train_evaluate_export_commands(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "lenet5", "--data", "patterns:classes=5,count=60", "--epochs", "1", "--batch-size", "16"]
    assert main([*argv, "--out", str(run), "--quiet"]) == 0
    assert "accuracy:" in capsys.readouterr().out
    assert main(["evaluate", str(run)]) == 0
    assert "macro avg" in capsys.readouterr().out
    assert main(["export", str(run), "--base", str(tmp_path / "sm"), "--name", "lenet"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("lenet/1")
    assert main(["check-export", path, "--run", str(run)]) == 0
    assert '"max_abs_diff": 0.0' in capsys.readouterr().out or "max_abs_diff" in capsys.readouterr().out
