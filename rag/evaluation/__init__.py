"""Evaluation: question sets (``datasets``), metrics (``metrics``), gold-passage matching
(``gold``), one mode's timed run (``runner``), per-question and per-mode scoring (``scoring``),
the result dataclasses (``results``), the whole run over every mode (``evaluate``), the misses
file (``miss_report``), progress bars (``progress``), the loaded-index interface (``protocol``),
the terminal report (``report``) and the ``rag eval`` command (``cli``)."""
