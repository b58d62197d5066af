"""The suite's own xdist scheduler (tests/conftest.py): a test that kills its worker fails, the run ends.

Before, the crashed test went back into the queue, crashed the replacement worker too, and the run then
waited forever: one native crash (a TensorFlow kernel segfault) hung CI instead of failing one test.
"""

import shutil
import subprocess
import sys
from pathlib import Path

CRASHING = '''
import os


def test_before():
    pass


def test_crash():
    os.abort()


def test_after():
    pass
'''


def test_a_worker_crash_fails_that_test_once_and_the_run_finishes(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_crashing.py").write_text(CRASHING)
    (tmp_path / "test_plain.py").write_text("def test_one():\n    pass\n\n\ndef test_two():\n    pass\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", "-rf",
         "-o", "addopts=", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert "crashed while running" in out, out[-3000:]
    assert "test_crashing.py::test_crash" in out and "1 failed, 4 passed" in out, out[-3000:]
