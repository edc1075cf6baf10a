"""``ContentDigest`` and ``RangeDigests`` (karri.storage.sparse): the same bytes give the
same digests however they are cut into writes (whole blocks hashed where they are, parts
gathered) and whether zeros are written or left as holes; a range's digest depends on
that range's bytes only."""

from __future__ import annotations

import itertools
import random

from karri.storage.sparse import (
    DIGEST_RANGE,
    EMPTY_RANGE,
    ZERO_BLOCK,
    ContentDigest,
    RangeDigests,
    ranges_of,
)

SIZE = 3 * DIGEST_RANGE + 3 * ZERO_BLOCK // 2  # a last range and a last block in part


def volume() -> bytearray:
    data = bytearray(SIZE)
    data[0:ZERO_BLOCK] = random.randbytes(ZERO_BLOCK)
    data[ZERO_BLOCK + 5 : ZERO_BLOCK + 900] = random.randbytes(895)
    data[2 * DIGEST_RANGE + 7 : SIZE] = random.randbytes(SIZE - 2 * DIGEST_RANGE - 7)
    return data


def fed(digest: ContentDigest, data: bytes, cuts: list[int]) -> ContentDigest:
    for start, end in itertools.pairwise(cuts):
        digest.write(data[start:end], start)
    return digest


def test_the_digests_do_not_depend_on_how_the_bytes_are_written() -> None:
    data = bytes(volume())
    whole_blocks = [*range(0, SIZE, 4 * ZERO_BLOCK), SIZE]
    odd = sorted({0, SIZE, *random.sample(range(1, SIZE), 40)})
    data_only = [0, ZERO_BLOCK + 900, 2 * DIGEST_RANGE, SIZE]  # zeros in between written
    digests = [fed(RangeDigests(SIZE), data, cuts) for cuts in (whole_blocks, odd, data_only)]
    holes = RangeDigests(SIZE)  # only the data written: the rest is holes
    holes.write(data[: ZERO_BLOCK + 900], 0)
    holes.write(data[2 * DIGEST_RANGE :], 2 * DIGEST_RANGE)
    digests.append(holes)
    plain = fed(ContentDigest(SIZE), data, odd).hexdigest()
    assert {d.hexdigest() for d in digests} == {plain}
    assert len({tuple(d.ranges()) for d in digests}) == 1
    ranges = digests[0].ranges()
    assert len(ranges) == 4 and ranges[1] == EMPTY_RANGE != ranges[0]
    partial = fed(RangeDigests(SIZE, whole=False), data, odd)
    assert partial.ranges() == ranges


def test_a_change_shows_in_its_range_only() -> None:
    data = volume()
    before = fed(RangeDigests(SIZE), bytes(data), [0, SIZE]).ranges()
    data[2 * DIGEST_RANGE + ZERO_BLOCK + 3] ^= 1
    after = fed(RangeDigests(SIZE), bytes(data), [0, SIZE]).ranges()
    assert [i for i in range(len(before)) if before[i] != after[i]] == [2]
    assert ranges_of([(DIGEST_RANGE - 1, 2), (3 * DIGEST_RANGE, 1)]) == {0, 1, 3}
