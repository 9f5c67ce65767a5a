"""Run one fuzz target: ``python fuzz/run.py TARGET [options]`` (targets in fuzz/targets.py).

With atheris installed (``pip install atheris``) this is a coverage-guided libFuzzer campaign;
extra arguments go to libFuzzer (``-max_total_time=600``, ``-jobs=2``, a corpus directory...).
Inputs come from libFuzzer's byte mutations and, for zip-based formats, from the structured
mutator (valid archives with forged members and correct checksums), half and half.

Without atheris, or with ``--hypothesis N``, hypothesis drives N examples of the same mutations
(no coverage feedback, but no native dependency).

A finding is printed with the input saved to ``fuzz/findings/TARGET/crash-*`` (atheris; run the
script again with that file as the only argument to replay it) or shown by hypothesis as a
(seed, mutation) pair that ``--replay`` reproduces. The corpus lives in ``fuzz/corpus/TARGET/``
(or ``$CNNFAST_FUZZ_CORPUS``); both are ignored by git.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import random
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import targets  # noqa: E402

_BYTES = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80", b"PK\x03\x04", b"PK\x01\x02",
          b"PK\x05\x06", b"\x93NUMPY", b"\x1f\x8b"]


def byte_mutation(data: bytes, seed: int) -> bytes:
    """Flip, overwrite, insert, delete or truncate a few bytes."""
    rnd = random.Random(seed)
    out = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.random()
        pos = rnd.randrange(len(out) + 1)
        if op < 0.35 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rnd.randrange(8)
        elif op < 0.6:
            chunk = rnd.choice(_BYTES)
            out[pos:pos + len(chunk)] = chunk
        elif op < 0.75:
            out[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op < 0.9:
            del out[pos:pos + rnd.randint(1, 64)]
        else:
            del out[pos:]
    return bytes(out)


def make_input(name: str, seed_bytes: bytes, seed: int, structured: bool) -> bytes:
    _, _, mutator = targets.TARGETS[name]
    if structured and mutator is not None:
        return mutator(seed_bytes, seed)
    return byte_mutation(seed_bytes, seed)


def run_hypothesis(name: str, examples: int) -> None:
    from hypothesis import given, settings, strategies as st
    target, seed_factory, mutator = targets.TARGETS[name]
    seed_bytes = seed_factory()
    target(seed_bytes)  # the seed itself must load

    @settings(max_examples=examples, deadline=None, database=None)
    @given(st.integers(0, 2**32 - 1), st.booleans())
    def campaign(seed, structured):
        target(make_input(name, seed_bytes, seed, structured))

    campaign()
    print(f"{name}: {examples} examples, no finding")


def run_atheris(name: str, argv: list) -> None:
    import atheris
    # Coverage feedback for the Python code that parses files: load it, then instrument every
    # function loaded so far (cnnfast's loaders, zipfile, json, numpy.lib.format, pickle's Python
    # parts).
    import cnnfast.datasets.cifar10  # noqa: F401
    import cnnfast.datasets._idx  # noqa: F401
    import cnnfast.models  # noqa: F401
    import cnnfast.saving  # noqa: F401
    target, seed_factory, mutator = targets.TARGETS[name]
    seed_bytes = seed_factory()
    atheris.instrument_all()

    def one_input(data: bytes):
        target(data)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        out = None
        if mutator is not None and seed % 2 == 0:
            try:
                out = mutator(data if data[:2] == b"PK" else seed_bytes, seed)
            except Exception:  # a mutator bug must not end the campaign
                out = None
        if out is None:
            out = atheris.Mutate(data if data else seed_bytes, max_size)
        return out[:max_size]

    here = pathlib.Path(__file__).resolve().parent
    corpus = pathlib.Path(os.environ.get("CNNFAST_FUZZ_CORPUS", here / "corpus" / name))
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        (corpus / "seed").write_bytes(seed_bytes)
    if not any(a.startswith("-artifact_prefix=") for a in argv):
        findings = here / "findings" / name
        findings.mkdir(parents=True, exist_ok=True)
        argv = [*argv, f"-artifact_prefix={findings}/"]
    atheris.Setup([sys.argv[0], *argv, str(corpus)], one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=sorted(targets.TARGETS))
    parser.add_argument("--hypothesis", type=int, metavar="N", help="run N hypothesis examples instead of atheris")
    parser.add_argument("--replay", nargs=2, metavar=("SEED", "STRUCTURED"),
                        help="rebuild and run one hypothesis example, e.g. --replay 1234 True")
    args, rest = parser.parse_known_args()
    if args.replay:
        target, seed_factory, _ = targets.TARGETS[args.target]
        data = make_input(args.target, seed_factory(), int(args.replay[0]), args.replay[1] == "True")
        pathlib.Path(f"replay-{args.target}.bin").write_bytes(data)
        target(data)
        print("no finding")
        return
    if args.hypothesis is None:
        try:
            import atheris  # noqa: F401
        except ImportError:
            args.hypothesis = 2000
            print("atheris is not installed: running 2000 hypothesis examples instead")
    if args.hypothesis is not None:
        run_hypothesis(args.target, args.hypothesis)
    else:
        run_atheris(args.target, rest)


if __name__ == "__main__":
    main()
