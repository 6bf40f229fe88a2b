"""The Docker backend's log reader without an engine: lines from frames, capped, each once, even when the
engine sends part of the log again (mleray/sandbox/docker/logs.py)."""

from __future__ import annotations

from mleray.sandbox.docker.logs import STDERR, STDOUT, LineAssembler, LogReader, since_for


def frame(stamp: str, payload: bytes) -> bytes:
    return b"2026-12-01T16:00:%s " % stamp.encode() + payload


def read(reader, *frames):
    return [line for stream, f in frames for line in reader.feed(stream, f)]


def test_lines_are_put_together_from_pieces_and_capped():
    lines = LineAssembler(cap=10)
    out = [*lines.feed(b"abc"), *lines.feed(b"def\n"), *lines.feed(b"\n"), *lines.feed(b"0123456789ABCDEF"),
           *lines.feed(b"GH\nlast\r\n"), *lines.feed(b"tail")]
    assert out == ["abcdef", "", "0123456789 [mleray: line cut, 8 more bytes dropped]", "last"]
    assert lines.rest() == "tail" and lines.rest() is None


def test_a_huge_line_is_never_held_whole():
    lines = LineAssembler(cap=1000)
    for _ in range(100):
        assert list(lines.feed(b"y" * 100000)) == []
        assert lines._held <= 1000
    (line,) = lines.feed(b"\n")
    assert line == "y" * 1000 + f" [mleray: line cut, {100 * 100000 - 1000} more bytes dropped]"


def test_frames_the_engine_sends_again_are_dropped():
    a, b, c, d = (frame(f"0{i}.000000000Z", b"%d\n" % i) for i in range(4))
    reader = LogReader()
    assert read(reader, (STDOUT, a), (STDOUT, b), (STDOUT, c), (STDOUT, a), (STDOUT, b), (STDOUT, c),
                (STDOUT, d)) == ["0", "1", "2", "3"]


def test_the_pieces_of_a_long_line_share_a_stamp_and_a_replay_is_counted():
    pieces = [(STDOUT, frame("01.000000000Z", b"p%d-" % i)) for i in range(4)]
    pieces.append((STDOUT, frame("01.000000000Z", b"end\n")))
    reader = LogReader()
    first = read(reader, *pieces[:3])  # the follower took three pieces, then its stream ended
    reader.replaying()
    rest = read(reader, *pieces, (STDOUT, frame("02.000000000Z", b"next\n")))
    assert first == [] and rest == ["p0-p1-p2-p3-end", "next"]


def test_a_replay_that_lost_the_head_of_a_long_line_still_ends_it():
    reader = LogReader()
    taken = read(reader, (STDOUT, frame("01.000000000Z", b"x" * 10)), (STDOUT, frame("01.000000000Z", b"x" * 10)))
    reader.replaying()  # the kept log holds only the line's last piece (its head rotated out), then more
    rest = read(reader, (STDOUT, frame("01.000000000Z", b"xx\n")), (STDOUT, frame("03.000000000Z", b"after\n")))
    assert taken == [] and rest == ["x" * 22, "after"]


def test_streams_are_filtered_and_assembled_apart():
    reader = LogReader()
    out = read(reader, (STDOUT, frame("01.000000000Z", b"half ")), (STDERR, frame("00.500000000Z", b"err\n")),
               (STDOUT, frame("01.000000000Z", b"line\n")), (STDERR, frame("00.400000000Z", b"old\n")))
    assert out == ["err", "half line"]
    assert reader.since() == since_for(b"2026-12-01T16:00:00.500000000Z")


def test_a_catch_up_after_the_log_rotated_takes_only_what_is_new():
    reader = LogReader()
    read(reader, (STDOUT, frame("01.000000000Z", b"a\n")), (STDOUT, frame("02.000000000Z", b"b\n")))
    reader.replaying()  # the kept log: a and b rotated out, x and y after them
    new = read(reader, (STDOUT, frame("05.000000000Z", b"x\n")), (STDOUT, frame("06.000000000Z", b"y\n")))
    assert new == ["x", "y"]
    assert list(reader.rest()) == []


def test_since_is_a_second_before_the_stamp():
    assert since_for(b"1970-01-01T00:00:10.999999999Z") == 9
    assert since_for(b"not a stamp") is None
    assert LogReader().since() is None
