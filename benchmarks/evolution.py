"""Log evolution: the scored part of a log as a newer release would write it.

Every release rewords some messages: a word is added ("terminating" -> "is terminating"), one is
dropped or replaced, a unit or a field appears ("of size N" -> "of size N bytes"), a component is
renamed, punctuation and case change. A detector that knows a message only by its exact text then
flags every session that holds it. These generators reword a chosen share of the message types
(a type: the normalised words the model reads) consistently, as a release would: every line of a
chosen type gets the same edit, and its variable fields (ids, numbers, paths) stay as they were.

The settings below were fixed before any result was looked at (the issue's rule: never tune on a
variant). A variant is named by the share of types it rewords: ``top1`` (the most frequent type
alone), ``5%``, ``15%``, ``30%`` (types drawn without replacement with probability proportional to
their frequency, so a common message is likelier to change, as it is in practice).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

VARIANTS = ("top1", "5%", "15%", "30%")
GENERATORS = ("insert", "delete", "replace", "add_field", "rename_component", "punctuation")
# Words a new release plausibly adds or substitutes; none is specific to one log.
INSERTED = ("now", "is", "successfully", "the", "request", "current", "new", "internal")
REPLACEMENTS = ("handling", "completed", "entry", "object", "process", "unit", "item", "state")
FIELDS = (" bytes", " (status=ok)", " in thread main", " [retry=0]", " ms", " for client")
_ALPHA = re.compile(r"^[A-Za-z]{2,}[:,.]?$")


@dataclass(frozen=True)
class Edit:
    """One message type's edit: a generator and where it applies (an index among the message's
    alphabetic words; the same for every line of the type)."""

    kind: str
    at: int
    word: str


def choose_types(types: list[str], counts: np.ndarray, variant: str, seed: int) -> list[str]:
    """The message types a variant rewords (most frequent first for ``top1``)."""
    order = np.argsort(-counts, kind="stable")
    if variant == "top1":
        return [types[order[0]]]
    share = float(variant.rstrip("%")) / 100.0
    k = max(1, math.ceil(share * len(types)))
    rng = np.random.default_rng(seed)
    p = counts / counts.sum()
    picked = rng.choice(len(types), size=min(k, int((p > 0).sum())), replace=False, p=p)
    return [types[i] for i in picked]


def plan_edits(chosen: list[str], seed: int) -> dict[str, Edit]:
    """One edit per chosen type, drawn from the generators in turn with a fixed seed."""
    rng = np.random.default_rng(seed + 1)
    out = {}
    for i, t in enumerate(chosen):
        kind = GENERATORS[(i + int(rng.integers(len(GENERATORS)))) % len(GENERATORS)]
        pool = {"insert": INSERTED, "replace": REPLACEMENTS, "add_field": FIELDS}.get(kind, ("",))
        out[t] = Edit(kind, int(rng.integers(0, 1 << 16)), pool[int(rng.integers(len(pool)))])
    return out


def apply_edit(message: str, component: str | None, edit: Edit) -> tuple[str, str | None]:
    """``(message, component)`` as the newer release writes them."""
    tokens = message.split(" ")
    alpha = [i for i, tok in enumerate(tokens) if _ALPHA.match(tok)]
    if edit.kind == "rename_component" and component:
        return message, _rename(component)
    if edit.kind == "punctuation" or (not alpha and edit.kind != "add_field"):
        return _punctuate(message), component
    if edit.kind == "add_field":
        return message + edit.word, component
    pos = alpha[edit.at % len(alpha)]
    if edit.kind == "insert":
        tokens.insert(pos, edit.word)
    elif edit.kind == "delete" and len(alpha) > 1:
        del tokens[pos]
    elif edit.kind == "replace" or edit.kind == "delete":  # a one-word message: replace it
        tail = tokens[pos][-1] if tokens[pos][-1] in ":,." else ""
        tokens[pos] = edit.word + tail
    return " ".join(tokens), component


def _rename(component: str) -> str:
    """``dfs.DataNode$PacketResponder`` -> ``dfs.DataNode$PacketResponderService``: a renamed
    class, as a refactoring leaves it."""
    return component + "Service" if component[-1:].isalpha() else component + "Svc"


def _punctuate(message: str) -> str:
    """Case and punctuation: capitalised first letter, a final period."""
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."


def reword_lines(lines: list[str], parsed, edits: dict[str, Edit]) -> tuple[list[str], int]:
    """Rewrite the raw lines whose type has an edit; returns the lines and how many changed.

    The message is replaced where it stands in the raw line (its last occurrence: formats put
    it last), the component at its first occurrence, so timestamps, levels and ids are kept."""
    table = parsed.table
    words = parsed.words.to_pylist()
    messages = table["message"].to_pylist()
    components = table["component"].to_pylist() if "component" in table.column_names else \
        [None] * len(lines)
    out = list(lines)
    changed = 0
    for i, (w, msg, comp) in enumerate(zip(words, messages, components)):
        edit = edits.get(w)
        if edit is None or msg is None:
            continue
        new_msg, new_comp = apply_edit(msg, comp, edit)
        raw = out[i]
        if new_msg != msg:
            at = raw.rfind(msg)
            if at < 0:
                continue
            raw = raw[:at] + new_msg + raw[at + len(msg):]
        if new_comp != comp and comp:
            at = raw.find(comp)
            raw = raw[:at] + new_comp + raw[at + len(comp):]
        if raw != out[i]:
            out[i] = raw
            changed += 1
    return out, changed


def variant_lines(lines: list[str], parsed, variant: str, seed: int = 0) -> tuple[list[str], dict]:
    """The scored lines as ``variant`` rewords them, and what it did (types, lines changed)."""
    words = parsed.words.to_pylist()
    types, counts = np.unique(np.array(words, dtype=object), return_counts=True)
    types = [str(t) for t in types]
    chosen = choose_types(types, counts.astype(np.float64), variant, seed)
    edits = plan_edits(chosen, seed)
    out, changed = reword_lines(lines, parsed, edits)
    return out, {"variant": variant, "types": len(types), "types_reworded": len(chosen),
                 "lines_changed": changed, "line_share_changed": changed / max(len(lines), 1),
                 "edits": {t: e.kind for t, e in edits.items()}}
