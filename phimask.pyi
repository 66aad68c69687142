"""phimask: masks or blocks protected health information (PHI) in analytics
events. The same engine as the phimask command and the edge Worker: for the
same policy and key, the same bytes."""

import os
from typing import Any, Dict, List, Optional, Tuple, TypeVar, Union

__version__: str
MAX_EVENT_BYTES: int

class Error(ValueError):
    """Base of phimask's errors; `code` and `message` never hold a value."""

    code: str
    message: str

class PolicyError(Error):
    """No Sanitizer can be made of this policy and key: `code` is
    invalid_policy (every problem in `problems`), missing_key or
    key_too_short."""

    problems: List[Tuple[str, str]]

class EventError(Error):
    """An event refused, so sent to no destination."""

_Column = TypeVar("_Column")

def masking_key(
    key_file: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Optional[bytes]:
    """The masking key as the phimask command reads it: from key_file (one
    trailing LF or CRLF is the file's line end), else from PHI_MASKING_KEY;
    None when neither gives one. Call it where the Sanitizer is made."""

class Sanitizer:
    """The engine for one policy and masking key. Make it once per worker,
    where it runs: it is never pickled (the pickle would hold the key)."""

    def __init__(
        self,
        policy: Union[Dict[str, Any], str, bytes],
        key: Optional[Union[str, bytes]] = None,
    ) -> None: ...
    def destinations(self) -> List[str]:
        """The server-side destinations, in policy order."""
    def sanitize(
        self,
        event: Union[str, bytes, Dict[str, Any]],
        destination: str,
        *,
        gpc: bool = False,
        region: Optional[str] = None,
        user_agent: Optional[str] = None,
        bot_score: Optional[int] = None,
    ) -> Optional[str]:
        """The JSON text to send, or None when the policy sends the
        destination nothing of the event. Raises EventError for a refused
        event. The keywords decide it as for a request with a Global
        Privacy Control signal, from a region (US-WA, or a country US),
        with a User-Agent header or a bot score (1 to 99)."""
    def sanitize_ndjson(
        self,
        data: bytes,
        destination: str,
        *,
        native: bool = False,
        gpc: bool = False,
        region: Optional[str] = None,
        user_agent: Optional[str] = None,
        bot_score: Optional[int] = None,
    ) -> bytes:
        """NDJSON in, what `phimask sanitize -d DESTINATION` writes out,
        byte for byte (with `native`, what `--native` writes: each event
        as the destination's API takes it)."""
    def sanitize_arrow(
        self,
        column: _Column,
        destination: str,
        *,
        native: bool = False,
        gpc: bool = False,
        region: Optional[str] = None,
        user_agent: Optional[str] = None,
        bot_score: Optional[int] = None,
    ) -> _Column:
        """A pyarrow Array or ChunkedArray of JSON strings to a string
        array (large_string for the large and view kinds; binary kinds and
        dictionaries of any of these are read as text) of the
        same length and chunks: null where not sent, refused, blank or
        null."""
    def take_report(self) -> Dict[str, Dict[str, Any]]:
        """Counts by destination since the last call: sent, not_sent,
        blank, refused, dropped, masked, transformed, and first_refused
        as (number, reason) pairs."""
