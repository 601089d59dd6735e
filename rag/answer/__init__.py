"""The answer path: the question parsed (``question``, ``romanized``), the sentence reader
(``reader``), the learned span reader (``span_features``, ``span_model``, ``span_reader``,
``span_edges``) and the one calibrated decision between them (``span_answer``)."""
