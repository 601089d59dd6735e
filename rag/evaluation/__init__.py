"""Evaluation: question sets (``datasets``), metrics (``metrics``), the runs and their results
(``evaluate``), the terminal report (``report``) and the ``rag eval`` command (``cli``)."""
