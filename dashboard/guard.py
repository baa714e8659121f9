"""The one place where errors become messages: the user never sees a traceback.

A ``TinyLogBERTError`` is the user's to fix and is shown as is; anything else is a bug, shown as
one line while the traceback goes to the server log. Streamlit's own control flow (``st.rerun``,
``st.stop``) derives from ``BaseException`` and passes straight through.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from tinylogbert.errors import TinyLogBERTError

logger = logging.getLogger("tinylogbert.dashboard")


@contextmanager
def shown_as_message() -> Iterator[None]:
    try:
        yield
    except TinyLogBERTError as exc:
        st.error(str(exc), icon=":material/error:")
    except MemoryError:
        st.error("Out of memory: try a smaller file, or score it with the CLI in parts.",
                 icon=":material/error:")
    except Exception as exc:  # a bug: one line here, the traceback in the server log
        logger.exception("dashboard error")
        st.error(
            f"Internal error ({type(exc).__name__}: {exc}). The details are in the server log; "
            "please report it.",
            icon=":material/bug_report:",
        )
