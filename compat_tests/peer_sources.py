"""The peers' source archives, fetched as files: fuseshim.matrix.sdists, which
the matrix's clients stage uses too."""
from fuseshim.matrix.sdists import (SIMPLE_JSON, IndexUnreachable, PeerSourceError,  # noqa: F401
                                    SdistFile, fetch_sdist, find_sdist, index_urls)
