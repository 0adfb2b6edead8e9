"""The object store behind ``aemon broker --storage``: S3's conditional writes and listings, as
the broker relies on them, kept in files."""

from __future__ import annotations

from aemon.tools.object_store import Store


def test_conditional_puts_as_s3_makes_them(tmp_path):
    s = Store(tmp_path)
    first = s.put("b", "w/mark.json", b"1", None, "*")  # only if absent
    assert first is not None and s.put("b", "w/mark.json", b"2", None, "*") is None
    assert s.put("b", "w/mark.json", b"2", '"stale"', None) is None  # only if unchanged
    second = s.put("b", "w/mark.json", b"2", first, None)
    assert second not in (None, first) and s.path("b", "w/mark.json").read_bytes() == b"2"
    assert s.put("b", "w/other.json", b"x", first, None) is None  # If-Match needs the object
    s.delete("b", "w/mark.json")
    assert s.etag("b", "w/mark.json") is None and not s.path("b", "w/mark.json").exists()


def test_listings_in_key_order_by_prefix_and_from_a_key(tmp_path):
    s = Store(tmp_path)
    keys = [f"t/p0/records/{i:020d}.batch" for i in (30, 0, 10, 20)]
    for k in keys:
        s.put("b", k, k.encode(), None, None)
    s.put("b", "t/p1/records/00000000000000000000.batch", b"", None, None)
    s.put("b", "t/p0/watermark.json", b"{}", None, None)
    assert s.keys("b", "t/p0/records/", "", 10) == sorted(keys)
    assert s.keys("b", "t/p0/records/", sorted(keys)[1], 2) == sorted(keys)[2:4]  # a next page
    assert s.keys("b", "t/p0/records/0000000000000000001", "t/p0/records/0", 9) == [keys[2]]
    assert s.keys("b", "t/p0/records/", "t/p0/z", 9) == []  # after every key
    s.put("b", "t/p0/records/00000000000000000005.batch", b"", None, None)  # after a listing
    s.delete("b", keys[0])
    assert s.keys("b", "t/p0/records/", "", 10)[:2] == [
        "t/p0/records/00000000000000000000.batch",
        "t/p0/records/00000000000000000005.batch",
    ] and keys[0] not in s.keys("b", "t/p0/records/", "", 10)
    everything = s.keys("b", "", "", 100)  # a prefix above directories: every key below it
    assert everything == sorted(everything) and len(everything) == 6
    # what is on disk is found again by a new process (the broker restarted on the same DIR)
    again = Store(tmp_path)
    assert again.keys("b", "t/p0/", "", 100) == [k for k in everything if k.startswith("t/p0/")]
    assert again.etag("b", "t/p0/watermark.json") == s.etag("b", "t/p0/watermark.json")


def test_keys_with_odd_characters_stay_apart(tmp_path):
    s = Store(tmp_path / "root")
    odd = ["a/b", "a/b%o", "a/b/c", "a/..", "a/ b", "a//b", "a/./b", "a/../../x"]
    for k in odd:
        s.put("b", k, k.encode(), None, None)
    assert {k: s.path("b", k).read_bytes() for k in odd} == {k: k.encode() for k in odd}
    assert sorted(s.keys("b", "a/", "", 10)) == sorted(odd)
    assert [p.name for p in tmp_path.iterdir()] == ["root"]  # nothing outside its root
