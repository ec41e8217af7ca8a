"""`meterflow bench decode`: decoder throughput on a mixed water fleet, interleaved rounds, best per size."""

from __future__ import annotations

import time

import click


def _fleet(n_meters: int, n_telegrams: int) -> tuple[dict[str, bytes], list[bytes]]:
    """Mode-5 OMS frames for n meters with distinct keys, plus ~10% plaintext and compact frames.

    The plaintext frames come from meters without a key (a keyed meter refuses plaintext)."""
    from decoders.wmbus.testing import mode5_frame, plain_frame, water_records

    keys = {f"{10_000_000 + i:08d}": (i.to_bytes(4, "big") * 4) for i in range(n_meters)}
    ids = list(keys)
    frames: list[bytes] = []
    compact = bytes.fromhex("23442D2C998734761B168D2087D19EAD217F1779EDA86AB6710008190000081900007F13")
    for t in range(n_telegrams):
        meter = ids[(t * 7919) % n_meters]
        if t % 20 == 0:
            frames.append(plain_frame(f"{20_000_000 + int(meter) % 10_000_000:08d}", water_records(t, t // 2, 5)))
        elif t % 20 == 1:
            frames.append(compact)
        else:
            frames.append(mode5_frame(meter, keys[meter], water_records(1000 + t, 900 + t, t % 50), acc=t & 0xFF))
    return keys, frames


class _Fleet:
    """A fleet's telegrams and a warmed decoder (key material cached once per meter, as in service)."""

    def __init__(self, n_meters: int, n_telegrams: int) -> None:
        from decoders.wmbus import WmbusDecoder

        click.echo(f"building {n_telegrams} telegrams for {n_meters} meters...", err=True)
        self.n_meters = n_meters
        keys, self.frames = _fleet(n_meters, n_telegrams)
        self.decoder = WmbusDecoder(keys=keys)
        for frame in self.frames[: min(len(self.frames), n_meters)]:
            self.decoder.decode(frame)

    def rate(self) -> float:
        from decoders.reading import Reading

        decode = self.decoder.decode
        start = time.perf_counter()
        ok = sum(1 for frame in self.frames if isinstance(decode(frame), Reading))
        elapsed = time.perf_counter() - start
        if ok != len(self.frames):
            click.echo(f"warning: {len(self.frames) - ok} telegrams did not decode", err=True)
        return len(self.frames) / elapsed


def _best_rates(fleets: list[_Fleet], rounds: int) -> list[float]:
    """Interleaved rounds, best per fleet: a busy machine slows all sizes alike instead of one."""
    best = [0.0] * len(fleets)
    for r in range(rounds):
        for i, fleet in enumerate(fleets):
            click.echo(f"round {r + 1}/{rounds}: {fleet.n_meters} meters...", err=True)
            best[i] = max(best[i], fleet.rate())
    return best


@click.command(epilog="Example: meterflow bench decode --meters 10000 --scaling")
@click.option("--meters", default=10_000, show_default=True, help="Fleet size.")
@click.option("--telegrams", default=50_000, show_default=True, help="Telegrams to decode per round.")
@click.option("--rounds", default=3, show_default=True, help="Measurement rounds (best is reported).")
@click.option("--scaling", is_flag=True, help="Also measure 100, 10k and 100k meters vs the 100-meter baseline.")
def bench_decode(meters: int, telegrams: int, rounds: int, scaling: bool) -> None:
    """Decoder throughput on a mixed water fleet (mode 5, plaintext, compact)."""
    if scaling:
        sizes = (100, 10_000, 100_000)
        fleets = [_Fleet(size, max(telegrams, size)) for size in sizes]
        rates = _best_rates(fleets, rounds)
        for size, rate in zip(sizes, rates, strict=True):
            click.echo(f"scaling: {size} meters {rate:,.0f} telegrams/s (ratio {rate / rates[0]:.2f} vs 100 meters)")
        del fleets
    (rate,) = _best_rates([_Fleet(meters, telegrams)], rounds)
    click.echo(f"decode: {rate:.0f} telegrams/s ({meters} meters)")
