"""The ``tinylogbert`` command line: ``main`` holds the parser and the train / score / evaluate
commands; each other command has a file of its own. Errors are one line, never a traceback.
"""
