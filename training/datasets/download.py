"""Checked download of the MNIST and Fashion-MNIST IDX files.

Each file is fetched into ``<name>.part`` beside its destination while its SHA-256 is computed,
and renamed into place only when the digest equals the published one; otherwise the part file is
deleted and the next mirror is tried. Files already present are verified, never overwritten.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from aemon.core import artifact
from aemon.core.errors import DataError

CHUNK = 1 << 16
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Source:
    mirrors: tuple[str, ...]  # base URLs, each ending in "/"
    sha256: dict[str, str]  # file name -> published digest of the .gz file


SOURCES = {
    "mnist": Source(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        sha256={
            "train-images-idx3-ubyte.gz": (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
            ),
            "train-labels-idx1-ubyte.gz": (
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
            ),
            "t10k-images-idx3-ubyte.gz": (
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
            ),
        },
    ),
    "fashion-mnist": Source(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256={
            "train-images-idx3-ubyte.gz": (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
            ),
            "train-labels-idx1-ubyte.gz": (
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
            ),
            "t10k-images-idx3-ubyte.gz": (
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
            ),
            "t10k-labels-idx1-ubyte.gz": (
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
            ),
        },
    ),
}


def _fetch_one(url: str, dest: Path, expected: str, progress: bool) -> None:
    """Download ``url`` to ``dest`` if its SHA-256 is ``expected``; raise otherwise."""
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as response,
            part.open("wb") as out,
            tqdm(
                total=int(response.headers.get("Content-Length") or 0) or None,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=None if progress else True,
            ) as bar,
        ):
            while block := response.read(CHUNK):
                digest.update(block)
                out.write(block)
                bar.update(len(block))
        if digest.hexdigest() != expected:
            raise ValueError(f"SHA-256 {digest.hexdigest()}, expected {expected}")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def fetch(
    dataset: str,
    root: Path,
    mirrors: tuple[str, ...] | None = None,
    *,
    sha256: dict[str, str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Make ``root`` hold the verified IDX files of ``dataset``; returns the files downloaded.

    ``mirrors`` (base URLs) replace the published ones, e.g. for an internal mirror;
    ``sha256`` replaces the published digests (tests).
    """
    if dataset not in SOURCES:
        raise DataError(f"no download for {dataset!r}; choose from {', '.join(SOURCES)}")
    source = SOURCES[dataset]
    sums = sha256 or source.sha256
    bases = [m if m.endswith("/") else m + "/" for m in (mirrors or source.mirrors)]
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name, expected in sums.items():
        dest = root / name
        if dest.is_file():
            if (got := artifact.sha256(dest)) != expected:
                raise DataError(
                    f"{dest}: SHA-256 {got}, expected the published {expected}; "
                    "remove the file to download it again"
                )
            continue
        failures = []
        for base in bases:
            try:
                _fetch_one(base + name, dest, expected, progress)
                break
            except (OSError, ValueError, http.client.HTTPException) as exc:
                failures.append(f"{base + name}: {exc}")
        else:
            raise DataError(f"could not download {name} into {root}: " + "; ".join(failures))
        fetched.append(dest)
    return fetched
