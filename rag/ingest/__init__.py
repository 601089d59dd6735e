"""Reading and cleaning documents: files to decoded text (``loaders``, ``extractors``), the
cleaned text with its report (``clean``), chunks with offsets (``chunking``), near-duplicate
detection (``neardup``). Nothing here knows about models or indexes."""
