"""kerasvk.io: atomic writes leave the old file or the new one (never half of one, never a temp file),
end world-readable under the umask, and the module sits at the bottom of the import graph."""

import ast
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from kerasvk import io


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_write_text_bytes_json_round_trip_and_leave_no_temp_files(tmp_path, umask022):
    io.write_text(tmp_path / "a" / "t.txt", "héllo\n")
    io.write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01")
    io.write_json({"x": np.float32(1.5), "n": np.int64(3), "v": np.arange(3), "t": (1, 2)}, tmp_path / "a" / "m.json")
    assert (tmp_path / "a" / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert io.read_json(tmp_path / "a" / "m.json") == {"x": 1.5, "n": 3, "v": [0, 1, 2], "t": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin", "m.json", "t.txt"]
    assert {_mode(p) for p in (tmp_path / "a").iterdir()} == {0o644}


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "m.json"
    io.write_json({"v": 1}, path)
    with pytest.raises(TypeError):
        with io.atomic_path(path) as tmp:
            tmp.write_text("{half")
            raise TypeError("crash mid-write")
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_read_json_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No run file"):
        io.read_json(tmp_path / "none.json", what="run file")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="Corrupt"):
        io.read_json(tmp_path / "bad.json")


def test_atomic_dir_never_overwrites_unless_asked_and_ends_readable(tmp_path, umask022):
    target = tmp_path / "export" / "1"
    with io.atomic_dir(target) as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "f.pb").write_bytes(b"x")
        assert not target.exists()  # nothing visible until the block ends
    assert _mode(target) == 0o755 and _mode(target / "sub") == 0o755 and _mode(target / "sub" / "f.pb") == 0o644
    with pytest.raises(FileExistsError):
        with io.atomic_dir(target):
            pass
    with io.atomic_dir(target, overwrite=True) as tmp:
        (tmp / "g").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["g"]
    with pytest.raises(RuntimeError):
        with io.atomic_dir(tmp_path / "export" / "2"):
            raise RuntimeError("crash")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["1"]


def test_save_figure_and_save_model(tmp_path, umask022):
    import keras
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = io.save_figure(fig, tmp_path / "plots" / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _mode(png) == 0o644
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = io.save_model(model, tmp_path / "m.keras")
    loaded = keras.saving.load_model(path)
    x = np.ones((1, 3), "float32")
    np.testing.assert_allclose(loaded(x), model(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "plots"]


def test_export_is_world_readable_and_never_overwritten(tmp_path, umask022):
    import keras

    from kerasvk.export import export_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name="tiny")
    path = export_model(model, base=tmp_path, name="tiny")
    assert path == tmp_path / "tiny" / "1"
    for root, dirs, files in os.walk(path):
        assert _mode(root) == 0o755
        assert all(_mode(os.path.join(root, f)) == 0o644 for f in files)
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["1"]  # no temp folder left
    with pytest.raises(ValueError, match="never overwritten"):
        export_model(model, base=tmp_path, name="tiny", version=1)


def test_io_is_the_bottom_of_the_import_graph():
    tree = ast.parse(open(io.__file__).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert not any(m.startswith("kerasvk") for m in imported), imported
    code = "import sys, kerasvk.io; print(any(m in sys.modules for m in ('tensorflow', 'keras', 'matplotlib')))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
