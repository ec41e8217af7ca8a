"""Radio sticks simulated on a pty pair (IMST iM871A) and a TCP socket (Amber AMB8465, raw hex lines),
speaking their real framing with corpus frames; line noise, truncated frames and a stick reset in the
middle of a message are counted and the source keeps reading."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from ingest_testlib import with_block_crcs

from ingest.dongles import amber, imst
from ingest.dongles.amber import AmberDecoder
from ingest.dongles.imst import ImstDecoder
from ingest.dongles.rawhex import RawHexDecoder, parse_line
from ingest.frames import ModbusRead, ReceivedFrame
from ingest.sources import FrameSink, StreamWorker


class ListSink(FrameSink):
    def __init__(self) -> None:
        self.frames: list[ReceivedFrame] = []
        self.bad_reasons: Counter[str] = Counter()
        self.lock = threading.Lock()

    def frame(self, item: ReceivedFrame | ModbusRead) -> None:
        assert isinstance(item, ReceivedFrame)
        with self.lock:
            self.frames.append(item)

    def bad(self, source: str, reason: str, detail: str = "") -> None:
        with self.lock:
            self.bad_reasons[reason] += 1

    def wait(self, n: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.frames) >= n:
                return True
            time.sleep(0.01)
        return len(self.frames) >= n


def imst_ind(frame: bytes, dbm: int) -> bytes:
    return imst.hci_message(imst.RADIOLINK_ID, imst.RADIOLINK_MSG_WMBUSMSG_IND, frame[1:],
                            rssi_raw=imst.rssi_raw(dbm))


def run_worker(worker: StreamWorker) -> Iterator[threading.Event]:
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    t.start()
    yield stop
    stop.set()
    t.join(3)
    assert not t.is_alive()


def test_imst_known_bytes() -> None:
    # SET_CONFIG_REQ for C1+T1 with RSSI on; the CRC is CRC-16/X-25 over everything after 0xA5, LSB first
    req = imst.set_link_mode_request("C1+T1")
    assert req[:8].hex() == "a581030500020a10"
    assert req[8] == 0x01
    assert int.from_bytes(req[-2:], "little") == imst.crc16_x25(req[1:-2])
    assert imst.hci_message(imst.DEVMGMT_ID, imst.DEVMGMT_MSG_PING_REQ, b"", crc=False) == bytes.fromhex("a5010100")
    assert amber.command(amber.CMD_SET_MODE_REQ, b"\x09") == bytes.fromhex("ff040109f3")


def test_imst_decoder_resyncs_after_reset_mid_frame(corpus_frames: list[bytes]) -> None:
    dec = ImstDecoder()
    good = [imst_ind(f, -60 - i) for i, f in enumerate(corpus_frames[:5])]
    stream = good[0] + b"\x00\x13\x37" + good[1][: len(good[1]) // 2] + good[2] + good[3] + good[4]
    events = dec.feed(stream, 1.0)
    frames = [e for e in events if isinstance(e, ReceivedFrame)]
    assert [f.data for f in frames[:1]] == [corpus_frames[0]]
    later = frames + [e for e in dec.expire(5.0) if isinstance(e, ReceivedFrame)]
    assert {f.data for f in later} >= {corpus_frames[0], corpus_frames[2], corpus_frames[3], corpus_frames[4]}
    assert corpus_frames[1] not in {f.data for f in later}
    assert frames[0].rssi == -60


def test_imst_stick_on_a_pty(corpus_frames: list[bytes]) -> None:
    master, slave = os.openpty()
    sink = ListSink()
    worker = StreamWorker("im871a", os.ttyname(slave), 57600, ImstDecoder("T1"), sink)
    gen = run_worker(worker)
    next(gen)
    try:
        # the gateway sets the link mode first; answer like the stick does
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < 11 and time.monotonic() < deadline:
            got += os.read(master, 64)
        assert got == imst.set_link_mode_request("T1")
        os.write(master, imst.hci_message(imst.DEVMGMT_ID, imst.DEVMGMT_MSG_SET_CONFIG_RSP, b"\x00"))
        frames = corpus_frames[:120]
        first, second = frames[:60], frames[60:]
        os.write(master, b"".join(imst_ind(f, -70) for f in first))
        assert sink.wait(60)
        # line noise, a message cut by a stick reset, then traffic again
        os.write(master, b"\x13\x37\xa5\xff garbage")
        cut = imst_ind(second[0], -70)
        os.write(master, cut[: len(cut) - 7])
        time.sleep(0.7)  # the reset: nothing arrives for a while
        os.write(master, b"".join(imst_ind(f, -70) for f in second[1:]))
        assert sink.wait(119), f"got {len(sink.frames)} frames, bad {sink.bad_reasons}"
        assert [f.data for f in sink.frames] == first + second[1:]
        assert all(f.rssi == -70 for f in sink.frames)
        assert sink.bad_reasons["noise"] >= 1
        assert sum(sink.bad_reasons.values()) >= 2
    finally:
        with pytest.raises(StopIteration):
            next(gen)
        os.close(master)
        os.close(slave)


class TcpFeed:
    """A TCP server the source connects to through a pyserial socket:// URL."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 5.0) -> socket.socket:
        self.server.settimeout(timeout)
        self.conn, _ = self.server.accept()
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


def test_amber_stick_over_socket(corpus_frames: list[bytes]) -> None:
    feed = TcpFeed()
    sink = ListSink()
    worker = StreamWorker("amb8465", f"socket://127.0.0.1:{feed.port}", 9600, AmberDecoder("C1+T1"), sink)
    gen = run_worker(worker)
    next(gen)
    try:
        conn = feed.accept()
        conn.settimeout(5)
        assert conn.recv(64) == amber.command(amber.CMD_SET_MODE_REQ, bytes([0x09]))
        conn.sendall(amber.command(amber.CMD_SET_MODE_REQ | amber.RESPONSE, b"\x00"))
        frames = corpus_frames[:100]
        stream = bytearray()
        for i, f in enumerate(frames):
            msg = amber.data_indication(f, amber.rssi_raw(-80 + i % 20))
            if i == 30:
                stream += msg[:9]  # stick reset mid-message
            if i == 50:
                stream += b"\x00\x01noise\x02"
            stream += msg
        conn.sendall(bytes(stream))
        assert sink.wait(100), f"got {len(sink.frames)}, bad {sink.bad_reasons}"
        assert [f.data for f in sink.frames] == frames
        assert [f.rssi for f in sink.frames] == [-80 + i % 20 for i in range(100)]
        assert sum(sink.bad_reasons.values()) >= 2
    finally:
        with pytest.raises(StopIteration):
            next(gen)
        feed.close()


def test_rawhex_lines() -> None:
    frame = bytes.fromhex("0E4401063412785601077A2A000000")
    ok = parse_line(frame.hex(), 1.0)
    assert isinstance(ok, ReceivedFrame) and ok.data == frame
    rtl = parse_line(f"T1;1;1;2019-04-03 19:00:42.000;97;148;88888888;0x{with_block_crcs(frame).hex()}", 2.0)
    assert isinstance(rtl, ReceivedFrame) and rtl.data == frame and rtl.rssi is None
    assert parse_line("# comment", 1.0) is None
    # a stray byte after L+1 is dropped (as the decoder does); bytes filling a format A length must carry CRCs
    trailing = parse_line(frame.hex() + "00", 3.0)
    assert isinstance(trailing, ReceivedFrame) and trailing.data == frame
    for line, reason in [("zz44", "not_hex"), ("0E44010634", "truncated"), (frame.hex() + "00" * 4, "bad_crc"),
                         ("C1;0;1;2019-04-03;97;148;1;0x" + frame.hex(), "bad_crc")]:
        bad = parse_line(line, 1.0)
        assert not isinstance(bad, ReceivedFrame) and bad is not None and bad.reason == reason


def test_rawhex_over_tcp_survives_noise_and_reconnect(corpus_frames: list[bytes]) -> None:
    feed = TcpFeed()
    sink = ListSink()
    worker = StreamWorker("rtl", f"socket://127.0.0.1:{feed.port}", 115200, RawHexDecoder(), sink)
    gen = run_worker(worker)
    next(gen)
    try:
        conn = feed.accept()
        lines = [f.hex().upper() for f in corpus_frames[:40]]
        conn.sendall(("\n".join(lines[:20]) + "\nthis is line noise\n\x00\x01\x02\n" + lines[20][:12] + "\n").encode())
        assert sink.wait(20), (len(sink.frames), sink.bad_reasons)
        conn.close()  # the feeding program restarts: the source reconnects by itself
        conn = feed.accept(timeout=10)
        conn.sendall(("\n".join(lines[21:]) + "\n").encode())
        assert sink.wait(39, timeout=10)
        assert [f.data for f in sink.frames] == corpus_frames[:20] + corpus_frames[21:40]
        assert sink.bad_reasons["not_hex"] == 2 and sink.bad_reasons["truncated"] == 1
    finally:
        with pytest.raises(StopIteration):
            next(gen)
        feed.close()


def test_imst_with_timestamp_and_without_crc(corpus_frames: list[bytes]) -> None:
    frame = corpus_frames[3]
    msg = imst.hci_message(imst.RADIOLINK_ID, imst.RADIOLINK_MSG_WMBUSMSG_IND, frame[1:], timestamp=123456,
                           rssi_raw=imst.rssi_raw(-85), crc=False)
    events = ImstDecoder().feed(msg, 7.0)
    assert events == [ReceivedFrame(frame, 7.0, -85)]


def test_amber_without_rssi_and_replies(corpus_frames: list[bytes]) -> None:
    dec = AmberDecoder("T1", rssi_appended=False)
    assert dec.init_commands() == [amber.command(amber.CMD_SET_MODE_REQ, bytes([0x05]))]
    reply = amber.command(amber.CMD_SET_MODE_REQ | amber.RESPONSE, b"\x00")
    stream = reply + amber.data_indication(corpus_frames[5], None)
    assert dec.feed(stream, 3.0) == [ReceivedFrame(corpus_frames[5], 3.0, None)]
    assert dec.replies == [(amber.CMD_SET_MODE_REQ | amber.RESPONSE, b"\x00")]
