"""The dependencies every write route declares, in the order their answers take precedence:
the API key first (401), then the body's media type (415)."""

from fastapi import Depends, Security

from dependencies.access import require_write_access
from dependencies.content_type import require_json_body

WRITE = [Security(require_write_access)]
JSON_WRITE = [*WRITE, Depends(require_json_body)]
