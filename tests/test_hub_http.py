"""The one non-public huggingface_hub call (http_get with resume_size) still has the shape we use."""

from __future__ import annotations

import io

from sam3dbody_gui import hub_http


def test_installed_huggingface_hub_keeps_the_http_get_we_resume_with():
    assert hub_http.http_get_problem() is None


def test_a_changed_http_get_is_noticed(monkeypatch):
    from huggingface_hub import file_download

    monkeypatch.setattr(file_download, "http_get", lambda url, temp_file, headers=None: None)
    problem = hub_http.http_get_problem()
    assert problem and "resume_size" in problem and "expected_size" in problem


def test_http_get_resuming_passes_our_arguments(monkeypatch):
    from huggingface_hub import file_download

    calls = []

    def fake(url, temp_file, *, resume_size=0, headers=None, expected_size=None, displayed_filename=None,
             tqdm_class=None, **rest):
        calls.append((url, resume_size, headers, expected_size, displayed_filename, tqdm_class))
        temp_file.write(b"rest")

    monkeypatch.setattr(file_download, "http_get", fake)
    fh = io.BytesIO(b"have")
    fh.seek(4)
    hub_http.http_get_resuming("https://h/x", fh, 4, {"a": "b"}, 8, "model.ckpt", None)
    assert calls == [("https://h/x", 4, {"a": "b"}, 8, "model.ckpt", None)] and fh.getvalue() == b"haverest"
