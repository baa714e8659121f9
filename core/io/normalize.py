"""Turn a raw message into the words the model reads, by masking what varies between events.

Masking rules are data (regex -> replacement), as in Drain3, applied in order as vectorised Arrow
kernels. After masking, only runs of letters survive, lower-cased:
``INFO DFSClient: Successfully read block BP-xxx`` -> ``dfsclient successfully read block``.
Dropping every digit and symbol is deliberate: ids, sizes, ports and timestamps are what make two
lines of the same event differ, and they are what a model would otherwise memorise.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class MaskingRule:
    name: str
    pattern: str  # RE2-compatible
    replacement: str = " "


DEFAULT_MASKING_RULES: tuple[MaskingRule, ...] = (
    MaskingRule("block_id", r"\b(?:blk_-?\d+|BP-[\w.:\-]+)"),
    MaskingRule("url", r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S+"),
    MaskingRule("ip", r"/?\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"),
    MaskingRule("path", r"(?:[A-Za-z]:)?(?:/[\w.\-$@%+~=,]+)+/?"),
    # Host names (``rhost=220-135-151-1.hinet-ip.hinet.net``): one per client of an SSH or FTP
    # server, so unmasked they made a routine "authentication failure" a new line per host. Only
    # names ending in a generic top-level domain, or a country's under one (``net.tw``,
    # ``co.uk``), and not followed by ``.`` or a word character: ``org.apache.hadoop.net.NetUtils``
    # and ``mapred.task.id`` are code, not hosts, and keep their words.
    MaskingRule("host", r"\b(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+(?:com|net|org|edu|gov|mil|info|biz|"
                        r"(?:com|net|org|edu|gov|co|ac)\.[a-z]{2})(?:[^.\w-]|$)"),
    MaskingRule("uuid", r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b"),
    MaskingRule("hex", r"\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]*\d[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b"),
    MaskingRule("number", r"\d+"),
)

MAX_WORDS_PER_LINE = 48


def _combined_pattern(rules: tuple[MaskingRule, ...]) -> str:
    """All masks and "anything but a letter" as one alternation: one scan of the text instead
    of one per rule (RE2 tries the alternatives left to right at each position, as the rules'
    order says)."""
    alternatives = "|".join([f"(?:{rule.pattern})" for rule in rules] + ["[^A-Za-z]"])
    return f"(?:{alternatives})+"  # a whole run of masks and non-letters becomes one space


def normalize_messages(
    component: pa.Array,
    message: pa.Array,
    rules: tuple[MaskingRule, ...] = DEFAULT_MASKING_RULES,
) -> pa.Array:
    """Masked, lower-cased words of ``component + ' ' + message`` for every line."""
    text = pc.binary_join_element_wise(
        pc.cast(pc.fill_null(component, ""), pa.large_string()),
        pc.cast(pc.fill_null(message, ""), pa.large_string()),
        pa.scalar(" ", pa.large_string()),
    )
    text = pc.replace_substring_regex(text, pattern=_combined_pattern(rules), replacement=" ")
    text = pc.utf8_trim_whitespace(pc.utf8_lower(text))
    # Cap very long lines (a 1 MB line must not become a 1 MB model input); only long ones pay.
    long = pc.greater(pc.utf8_length(text), MAX_WORDS_PER_LINE * 4)
    if pc.any(long).as_py():
        capped = pc.replace_substring_regex(
            text, pattern=rf"^((?:\S+ ){{{MAX_WORDS_PER_LINE - 1}}}\S+) .*$", replacement=r"\1"
        )
        text = pc.if_else(long, capped, text)
    return text


def normalize_message(message: str, component: str = "") -> list[str]:
    """Words of a single message (tests, docs and the API's explain view)."""
    arr = normalize_messages(pa.array([component]), pa.array([message]))
    text = arr[0].as_py()
    return text.split() if text else []
