"""Console entry points (``promptkit-train``, ``promptkit-test``); ``tools/*.py`` are thin wrappers around them.

Each tool's ``main(argv=None)`` parses mmaction2's flags, builds an MMEngine ``Runner`` and runs it.
"""
