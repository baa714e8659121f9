"""``python -m tinylogbert.cli.main``: the same as the ``tinylogbert`` command."""
from tinylogbert.cli.main import entry

entry()
