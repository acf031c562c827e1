"""Uploaded files are let go of once taken in (server.runtime.release_uploads), against Streamlit's real upload
manager: without it Streamlit keeps every upload's bytes until the session ends."""
from types import SimpleNamespace

from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFile, UploadedFileRec

import server.runtime as runtime


def test_release_removes_the_files_from_streamlits_manager_and_closes_them(monkeypatch):
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    recs = [UploadedFileRec(file_id=f"f{i}", name=f"p{i}.jpg", type="image/jpeg", data=bytes(1000)) for i in range(3)]
    for r in recs:
        mgr.add_file("session-a", r)
    mgr.add_file("session-b", UploadedFileRec(file_id="g", name="q.jpg", type="image/jpeg", data=b"x"))
    files = [UploadedFile(r, None) for r in recs[:2]]
    monkeypatch.setattr("streamlit.runtime.scriptrunner.get_script_run_ctx",
                        lambda: SimpleNamespace(session_id="session-a", uploaded_file_mgr=mgr))
    assert runtime.release_uploads(files, None) is True
    assert [r.file_id for r in mgr.get_files("session-a", ["f0", "f1", "f2"])] == ["f2"]  # only those given
    assert [r.file_id for r in mgr.get_files("session-b", ["g"])] == ["g"]  # another session's untouched
    assert all(f.closed for f in files)
    one = UploadedFile(recs[2], None)
    assert runtime.release_uploads(one) is True and mgr.get_files("session-a", ["f2"]) == []


def test_without_an_upload_manager_it_says_so_and_closes_the_files(monkeypatch, caplog):
    rec = UploadedFileRec(file_id="f", name="p.jpg", type="image/jpeg", data=b"abc")
    f = UploadedFile(rec, None)
    monkeypatch.setattr("streamlit.runtime.scriptrunner.get_script_run_ctx", lambda: SimpleNamespace())
    assert runtime.release_uploads([f]) is False
    assert f.closed and "upload manager not found" in caplog.text


def test_switched_off_it_leaves_the_files_to_streamlit(monkeypatch):
    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    rec = UploadedFileRec(file_id="f", name="p.jpg", type="image/jpeg", data=b"abc")
    mgr.add_file("session-a", rec)
    f = UploadedFile(rec, None)
    monkeypatch.setattr("streamlit.runtime.scriptrunner.get_script_run_ctx",
                        lambda: SimpleNamespace(session_id="session-a", uploaded_file_mgr=mgr))
    monkeypatch.setenv("GRADCAM_STUDIO_OFF", "uploads")
    assert runtime.release_uploads([f]) is False
    assert not f.closed and [r.file_id for r in mgr.get_files("session-a", ["f"])] == ["f"]
