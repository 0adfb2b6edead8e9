import functools
import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from aemon.cli import main
from aemon.core.errors import DataError
from aemon.training.datasets import download
from aemon.training.datasets.images import IDX_FILES, load_idx
from tests.unit.test_images import idx_bytes

NAMES = [n for pair in IDX_FILES.values() for n in pair]


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server over a directory holding tiny IDX files; yields (url, dir, sums)."""
    served = tmp_path / "served"
    served.mkdir()
    rng = np.random.default_rng(3)
    images, labels = rng.integers(0, 256, (8, 4, 4)), rng.integers(0, 10, 8)
    for img_name, lab_name in IDX_FILES.values():
        (served / img_name).write_bytes(gzip.compress(idx_bytes(images)))
        (served / lab_name).write_bytes(gzip.compress(idx_bytes(labels)))
    sums = {n: hashlib.sha256((served / n).read_bytes()).hexdigest() for n in NAMES}
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", served, sums
    server.shutdown()
    server.server_close()


def test_downloads_verified_files_that_then_load(mirror, tmp_path):
    url, _, sums = mirror
    root = tmp_path / "data"
    got = download.fetch("mnist", root, (url,), sha256=sums, progress=False)
    assert sorted(p.name for p in got) == sorted(NAMES)
    assert load_idx(root, "train").images.shape == (8, 4, 4)
    assert download.fetch("mnist", root, (url,), sha256=sums, progress=False) == []
    assert not list(root.glob("*.part"))


def test_a_file_with_the_wrong_digest_is_refused_and_not_kept(mirror, tmp_path):
    url, served, sums = mirror
    (served / NAMES[0]).write_bytes(b"tampered")
    root = tmp_path / "data"
    with pytest.raises(
        DataError, match=f"could not download {NAMES[0]}.*expected {sums[NAMES[0]]}"
    ):
        download.fetch("mnist", root, (url,), sha256=sums, progress=False)
    assert list(root.iterdir()) == []


def test_falls_back_to_the_next_mirror(mirror, tmp_path):
    url, _, sums = mirror
    root = tmp_path / "data"
    got = download.fetch("mnist", root, (url + "nowhere/", url), sha256=sums, progress=False)
    assert len(got) == 4


def test_a_present_file_with_another_digest_is_reported_not_overwritten(mirror, tmp_path):
    url, _, sums = mirror
    root = tmp_path / "data"
    root.mkdir()
    (root / NAMES[1]).write_bytes(b"mine")
    with pytest.raises(DataError, match="remove the file to download it again"):
        download.fetch("mnist", root, (url,), sha256=sums, progress=False)
    assert (root / NAMES[1]).read_bytes() == b"mine"


def test_published_digests_cover_every_file():
    for source in download.SOURCES.values():
        assert sorted(source.sha256) == sorted(NAMES)
        assert all(len(d) == 64 for d in source.sha256.values())


def test_cli_download_checks_the_published_digests(mirror, tmp_path, capsys):
    url, _, _ = mirror
    root = tmp_path / "data"
    argv = ["train", "image", "--dataset", "mnist", "--data-root", str(root), "--quiet"]
    assert main([*argv, "--download", "--mirror", url]) == 2
    err = capsys.readouterr().err
    assert "SHA-256" in err and download.SOURCES["mnist"].sha256[NAMES[0]] in err
    assert list(root.iterdir()) == []
    assert main(argv) == 2
    assert "add --download" in capsys.readouterr().err
