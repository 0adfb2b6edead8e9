"""A small S3-compatible object store on loopback that keeps its objects in files, so that the
embedded broker (Tansu with ``s3://`` storage) keeps topics, groups and offsets on disk: across
its own restarts and for runs too long to hold in memory (``make soak``).

It serves what Tansu's object store client asks for, path-style and without checking
signatures (loopback only): create a bucket, put (also only if absent, ``If-None-Match: *``, or
only if unchanged, ``If-Match: <etag>``), get (with ``Range``), head, delete and list (version
2, prefix, pages). An object ``a/b/c`` of bucket ``B`` lies in ``ROOT/B/a/b/c%o`` (each part
%-quoted) with its ETag in ``c%t`` beside it; writes go to a temporary file and are renamed into
place, so a reader never sees half an object.

``python -m aemon.tools.object_store ROOT --port N``; it prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import os
import sys
import threading
import time
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape, unescape

OBJ, TAG = "%o", "%t"  # suffixes no quoted key part ends with (quote() writes %XX, XX in 0-9A-F)
NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def _part(p: str) -> str:
    """A key part as a file name: %-quoted; empty, "." and ".." as names quote() never writes."""
    q = quote(p, safe="")
    if not q.strip("."):
        return q.replace(".", "%2E") or "%"
    return q


def _unpart(name: str) -> str:
    return "" if name == "%" else unquote(name)


class Store:
    """Objects as files under ``root``; one lock makes each conditional put atomic and keeps the
    caches in step with the files. The object
    names of each directory without subdirectories are kept sorted in memory once listed, and
    each object's size, time and ETag once read, so that a page of a listing costs the page, not
    the directory (the broker lists a partition's batches on every fetch)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.names: dict[Path, list[str]] = {}  # directory -> its objects' key parts, sorted
        self.info: dict[tuple[str, str], tuple[int, float, str]] = {}  # size, mtime, ETag
        self.entries: dict[tuple[str, str], str] = {}  # its entry in a listing
        root.mkdir(parents=True, exist_ok=True)

    def bucket(self, bucket: str) -> Path:
        return self.root / _part(bucket)

    def _where(self, bucket: str, key: str) -> tuple[Path, str]:
        """The directory of ``key`` (or of a prefix) and its last part."""
        *head, last = key.split("/")
        return self.bucket(bucket).joinpath(*(_part(p) for p in head)), last

    def path(self, bucket: str, key: str) -> Path:
        folder, last = self._where(bucket, key)
        return folder / (_part(last) + OBJ)

    def stat(self, bucket: str, key: str) -> tuple[int, float, str] | None:
        """Size, modification time and ETag of an object (None: there is none), read from disk
        once."""
        known = self.info.get((bucket, key))
        if known is None:
            where = self.path(bucket, key)
            with self.lock:  # not between a put's two renames
                try:
                    st = where.stat()
                    tag = where.with_name(where.name[: -len(OBJ)] + TAG).read_text()
                except FileNotFoundError:
                    return None
                known = self.info[bucket, key] = (st.st_size, st.st_mtime, tag)
        return known

    def listed(self, bucket: str, key: str) -> str | None:
        """The object's ``<Contents>`` entry of a listing (None: it is gone), made once."""
        entry = self.entries.get((bucket, key))
        if entry is None:
            with self.lock:  # a put meanwhile would leave a stale entry behind
                known = self.stat(bucket, key)
                if known is None:
                    return None
                size, mtime, tag = known
                modified = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
                entry = self.entries[bucket, key] = (
                    f"<Contents><Key>{escape(key)}</Key><LastModified>{modified}</LastModified>"
                    f"<ETag>{escape(tag)}</ETag><Size>{size}</Size>"
                    "<StorageClass>STANDARD</StorageClass></Contents>"
                )
        return entry

    def etag(self, bucket: str, key: str) -> str | None:
        known = self.stat(bucket, key)
        return None if known is None else known[2]

    def put(
        self, bucket: str, key: str, body: bytes, if_match: str | None, if_none: str | None
    ) -> str | None:
        """The new ETag, or None when a condition fails."""
        folder, last = self._where(bucket, key)
        tag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        with self.lock:
            current = self.etag(bucket, key)
            if (if_none == "*" and current is not None) or (
                if_match is not None and (current is None or if_match not in ("*", current))
            ):
                return None
            if not folder.is_dir():  # a new directory: its parents' listings change shape
                folder.mkdir(parents=True)
                for parent in folder.parents:
                    self.names.pop(parent, None)
            name = _part(last)
            for suffix, data in ((OBJ, body), (TAG, tag.encode())):
                tmp = folder / f".tmp{suffix}"
                tmp.write_bytes(data)
                os.replace(tmp, folder / (name + suffix))
            self.info[bucket, key] = (len(body), time.time(), tag)
            self.entries.pop((bucket, key), None)
            names = self.names.get(folder)
            if names is not None and current is None:
                bisect.insort(names, last)
        return tag

    def delete(self, bucket: str, key: str) -> None:
        folder, last = self._where(bucket, key)
        with self.lock:
            name = _part(last)
            for suffix in (OBJ, TAG):
                (folder / (name + suffix)).unlink(missing_ok=True)
            self.info.pop((bucket, key), None)
            self.entries.pop((bucket, key), None)
            names = self.names.get(folder)
            if names is not None:
                i = bisect.bisect_left(names, last)
                if i < len(names) and names[i] == last:
                    del names[i]

    def _names(self, folder: Path) -> list[str]:
        """The key parts of ``folder``'s objects, sorted (read from disk once)."""
        names = self.names.get(folder)
        if names is None:
            try:
                found = [e.name[: -len(OBJ)] for e in os.scandir(folder) if e.name.endswith(OBJ)]
            except FileNotFoundError:
                found = []
            names = self.names[folder] = sorted(_unpart(n) for n in found)
        return names

    def keys(self, bucket: str, prefix: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` keys of ``bucket`` after ``after`` that start with ``prefix``, in
        order."""
        folder, rest = self._where(bucket, prefix)
        base = prefix[: len(prefix) - len(rest)]
        with self.lock:
            flat = folder in self.names or not (
                folder.is_dir() and any(e.is_dir() for e in os.scandir(folder))
            )
            if flat:  # one directory: its sorted names, from the first one wanted
                names = self._names(folder)
                i = bisect.bisect_left(names, rest)
                if after.startswith(base):
                    i = max(i, bisect.bisect_right(names, after[len(base) :]))
                out = []
                for name in names[i:]:
                    if not name.startswith(rest) or len(out) >= limit:
                        break
                    if base + name > after:
                        out.append(base + name)
                return out
        found = []
        top = self.bucket(bucket)
        for dirpath, _, files in os.walk(folder):
            rel = Path(dirpath).relative_to(top)
            stem = "".join(_unpart(p) + "/" for p in rel.parts)
            found += [stem + _unpart(f[: -len(OBJ)]) for f in files if f.endswith(OBJ)]
        return sorted(k for k in found if k.startswith(prefix) and k > after)[:limit]


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms wait
    store: Store

    def log_message(self, format: str, *args: object) -> None:
        if os.environ.get("AEMON_OBJECT_STORE_LOG"):
            sys.stderr.write(f"{self.command} {self.path} " + format % args + "\n")

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        bucket, _, key = url.path.lstrip("/").partition("/")
        return unquote(bucket), unquote(key), parse_qs(url.query, keep_blank_values=True)

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, name: str) -> None:
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{name}</Code></Error>"
        self._send(code, body.encode(), {"Content-Type": "application/xml"})

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_PUT(self) -> None:
        bucket, key, _ = self._target()
        body = self._body()
        if not key:  # create the bucket
            self.store.bucket(bucket).mkdir(parents=True, exist_ok=True)
            self._send(200)
            return
        tag = self.store.put(
            bucket, key, body, self.headers.get("If-Match"), self.headers.get("If-None-Match")
        )
        if tag is None:
            self._error(412, "PreconditionFailed")
        else:
            self._send(200, headers={"ETag": tag})

    def do_GET(self) -> None:
        bucket, key, query = self._target()
        if not key:
            self._list(bucket, query)
            return
        known = self.store.stat(bucket, key)  # the ETag first: a put meanwhile fails its If-Match
        try:
            data = self.store.path(bucket, key).read_bytes()
        except FileNotFoundError:
            known = None
        if known is None:
            self._error(404, "NoSuchKey")
            return
        _, mtime, tag = known
        headers = {"ETag": tag, "Last-Modified": _http_date(mtime)}
        if self.headers.get("If-None-Match") == tag:
            self._send(304, headers=headers)
            return
        if self.headers.get("If-Match") not in (None, "*", tag):
            self._error(412, "PreconditionFailed")
            return
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            lo, _, hi = wanted[6:].partition("-")
            if lo == "":
                start, end = max(0, len(data) - int(hi)), len(data) - 1
            else:
                start, end = int(lo), min(int(hi) if hi else len(data) - 1, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(206, data[start : end + 1], headers)
            return
        self._send(200, data, headers)

    def do_HEAD(self) -> None:
        bucket, key, _ = self._target()
        if not key:
            self._send(200 if self.store.bucket(bucket).is_dir() else 404)
            return
        known = self.store.stat(bucket, key)
        if known is None:
            self._send(404)
            return
        size, mtime, tag = known
        self.send_response(200)
        self.send_header("ETag", tag)
        self.send_header("Last-Modified", _http_date(mtime))
        self.send_header("Content-Length", str(size))
        self.end_headers()

    def do_DELETE(self) -> None:
        bucket, key, _ = self._target()
        self.store.delete(bucket, key)
        self._send(204)

    def do_POST(self) -> None:
        """Bulk delete (``?delete``): the keys in the request's XML."""
        bucket, _, query = self._target()
        body = self._body().decode()
        if "delete" not in query:
            self._error(501, "NotImplemented")
            return
        keys = [unescape(k.split("</Key>")[0]) for k in body.split("<Key>")[1:]]
        for key in keys:
            self.store.delete(bucket, key)
        deleted = "".join(f"<Deleted><Key>{escape(k)}</Key></Deleted>" for k in keys)
        xml = f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="{NS}">{deleted}'
        xml += "</DeleteResult>"
        self._send(200, xml.encode(), {"Content-Type": "application/xml"})

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        first = lambda name, default="": query.get(name, [default])[0]  # noqa: E731
        if first("delimiter"):
            self._error(501, "NotImplemented")  # the broker never asks for one
            return
        prefix = first("prefix")
        after = first("continuation-token") or first("start-after")
        # S3 pages by 1,000 keys; Tansu reads only the first page of a partition's batches, so
        # without a max-keys of its own a listing is one page, however long
        limit = int(first("max-keys", "0")) or sys.maxsize
        keys = self.store.keys(bucket, prefix, after, limit + 1)
        truncated, keys = len(keys) > limit, keys[:limit]
        contents = [c for c in map(self.store.listed, [bucket] * len(keys), keys) if c]
        more = (
            f"<NextContinuationToken>{escape(keys[-1])}</NextContinuationToken>"
            if truncated
            else ""
        )
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{NS}">'
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
            f"<KeyCount>{len(contents)}</KeyCount><MaxKeys>{min(limit, 2**31 - 1)}</MaxKeys>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{more}"
            + "".join(contents)
            + "</ListBucketResult>"
        )
        self._send(200, xml.encode(), {"Content-Type": "application/xml"})


def serve(root: Path, port: int) -> None:
    handler = type("BoundHandler", (Handler,), {"store": Store(root)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m aemon.tools.object_store")
    p.add_argument("root", type=Path, help="the directory that holds the objects")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    serve(args.root, args.port)


if __name__ == "__main__":
    main()
