"""Masking rules of the user's own, applied to the normalised words the model reads.

Why: the built-in masks remove what every log varies (numbers, ids, paths, addresses), but not
what only one system varies: OpenSSH writes ``Invalid user magnos from …``, Thunderbird
``unable to qualify my own domain name (badmin1)``. Left as they are, each user or host name
makes a message of its own, seen once, so a never-seen fault looks as ordinary as a new user
name. A rule is written against the words the model reads (lower-case letters, one space apart:
what the Templates page and ``LINES.csv``'s ``template`` show), e.g. ``user \\w+=>user`` or
``domain name \\w+=>domain name``:

- ``PATTERN`` removes every match;
- ``PATTERN=>REPLACEMENT`` replaces it (``\\1`` names a group of ``PATTERN``).

Rules run with RE2 (linear time, ``safe_regex.py``), in order, on each distinct text once; they
are saved with the model, so scoring masks exactly as training did.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert.errors import FormatError
from tinylogbert.io.safe_regex import compile_linear

SEPARATOR = "=>"
_GROUP_REF = re.compile(r"\\(\d+)")


def parse_mask(spec: str) -> tuple[str, str]:
    """``(pattern, replacement)`` of one rule; a ``FormatError`` names a rule that cannot run."""
    pattern, _, replacement = spec.partition(SEPARATOR)
    if not pattern.strip():
        raise FormatError(f"mask {spec!r}: the pattern is empty (write PATTERN or "
                          f"PATTERN{SEPARATOR}REPLACEMENT)")
    regex = compile_linear(pattern, f"mask {pattern!r}")
    groups = [int(g) for g in _GROUP_REF.findall(replacement)]
    if any(g > regex.groups for g in groups):
        raise FormatError(f"mask {spec!r}: the replacement names group \\{max(groups)}, the "
                          f"pattern has {regex.groups}")
    return pattern, replacement


def check_masks(specs: Sequence[str]) -> tuple[str, ...]:
    """The rules as given, each checked (``parse_mask``)."""
    for spec in specs:
        parse_mask(spec)
    return tuple(specs)


def apply_masks(words: pa.Array | pa.ChunkedArray, specs: Sequence[str]) -> pa.Array:
    """``words`` with every rule applied in order (whitespace collapsed after each)."""
    if not specs:
        return words
    rules = [(compile_linear(p, "mask"), r) for p, r in map(parse_mask, specs)]
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    encoded = pc.dictionary_encode(words)
    masked = []
    for text in encoded.dictionary.to_pylist():
        for regex, replacement in rules:
            text = " ".join(regex.sub(replacement, text).split())
        masked.append(text)
    return pc.take(pa.array(masked, type=words.type), encoded.indices)
