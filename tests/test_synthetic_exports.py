"""make-synthetic on the default install (no onnx/onnxscript): the default works, an explicit ONNX
request fails before any work, and torch's .pt2 suffix warning never shows."""

from __future__ import annotations

import warnings

import pytest

from sam3dbody_gui.errors import UserError
from sam3dbody_gui.synthetic import backbone_exports, make


@pytest.fixture
def no_onnx(monkeypatch):
    real = backbone_exports.importlib.util.find_spec
    monkeypatch.setattr(backbone_exports.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnx", "onnxscript") else real(name, *a))


def test_default_exports_skip_onnx_without_its_packages_and_say_so(no_onnx, tmp_path, capfd, caplog):
    said = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = make.make_synthetic_model(tmp_path / "m", exports=None, progress=said.append)
    # torch logs "Expect archive file to be a file ending in .pt2" for any other temporary name.
    assert "Expect archive file" not in capfd.readouterr().err + caplog.text
    assert (folder / make.EXPORTS_DIR / make.PT2_NAME).is_file()
    assert not (folder / make.EXPORTS_DIR / make.ONNX_NAME).exists()
    assert any("skipping the ONNX backbone export" in m and "sam3dbody-gui[export]" in m for m in said)
    assert not list((folder / make.EXPORTS_DIR).glob("*partial*"))


def test_explicit_onnx_without_its_packages_fails_before_any_work(no_onnx, tmp_path, monkeypatch):
    monkeypatch.setattr(make, "build_synthetic_model", lambda *a: pytest.fail("work started"))
    with pytest.raises(UserError, match="onnxscript"):
        make.make_synthetic_model(tmp_path / "m", exports=("onnx", "pt2"))
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []
