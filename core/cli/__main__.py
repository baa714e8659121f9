"""``python -m tinylogbert.cli``: the same as the ``tinylogbert`` command."""
from tinylogbert.cli.main import entry

entry()
