"""The write path, as a small package.

* :mod:`~pgsearch.ingest.documents`: :class:`DocumentInput` and :class:`IngestSummary`.
* :mod:`~pgsearch.ingest.validation`: every check that runs before the first write.
* :mod:`~pgsearch.ingest.statements`: the SQL, and the binary COPY through a staging table.
* :mod:`~pgsearch.ingest.writer`: :func:`write_documents`, the orchestration.
"""

from pgsearch.ingest.documents import DocumentInput, IngestSummary, content_hash
from pgsearch.ingest.validation import (
    MAX_DOCUMENT_CHARS,
    MAX_ID_BYTES,
    MAX_METADATA_DEPTH,
    check_documents,
    given_vectors,
    validate_documents,
)
from pgsearch.ingest.writer import write_documents

__all__ = [
    "MAX_DOCUMENT_CHARS",
    "MAX_ID_BYTES",
    "MAX_METADATA_DEPTH",
    "DocumentInput",
    "IngestSummary",
    "check_documents",
    "content_hash",
    "given_vectors",
    "validate_documents",
    "write_documents",
]
