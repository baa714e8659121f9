"""Reading logs: bytes to lines (``log_reader``), formats as data (``log_formats``), lines to
records (``log_parser``), messages to the words the model reads (``normalize``), and user regexes
run safely (``safe_regex``). Every input line leaves this stage as exactly one row.
"""
