import random

from aiokafka.partitioner import DefaultPartitioner

from aemon.daemon.publisher import partition_for


def test_keyed_records_go_where_kafkas_default_partitioner_sends_them():
    rng = random.Random(0)
    default = DefaultPartitioner()
    for _ in range(500):
        key = rng.randbytes(rng.randrange(1, 40))
        n = rng.randrange(1, 13)
        assert partition_for(key, n) == default(key, list(range(n)), list(range(n)))
    assert partition_for(b"p-17", 6) == partition_for(b"p-17", 6)


def test_unkeyed_records_go_to_some_partition():
    assert {partition_for(None, 3) for _ in range(200)} == {0, 1, 2}
