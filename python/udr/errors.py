"""UDR's errors as Python exceptions: each carries UDR's message and code."""

from __future__ import annotations


class UDRError(Exception):
    """An error UDR reported; ``code`` says which kind (``not_found``, ``conflict``, …)."""

    code = "runtime"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgumentError(UDRError, ValueError):
    code = "invalidArgument"


class InvalidNameError(InvalidArgumentError):
    code = "invalidName"


class InvalidInputError(UDRError, ValueError):
    code = "invalidInput"


class NotFoundError(UDRError, LookupError):
    code = "notFound"


class NotARepositoryError(NotFoundError):
    code = "notARepository"


class AlreadyExistsError(UDRError):
    code = "alreadyExists"


class ConflictError(UDRError):
    code = "conflict"


class DuplicateKeyError(UDRError, ValueError):
    code = "duplicateKey"


class NullKeyError(UDRError, ValueError):
    code = "nullKey"


class QueryError(UDRError):
    code = "query"


class ReadOnlyError(UDRError):
    code = "readOnly"


class TransactionError(UDRError):
    code = "transaction"


class CorruptObjectError(UDRError):
    code = "corruptObject"


class RuntimeMissingError(UDRError):
    code = "runtime"


_BY_CODE: dict[str, type[UDRError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError, InvalidNameError, InvalidInputError, NotFoundError, NotARepositoryError, AlreadyExistsError, ConflictError, DuplicateKeyError, NullKeyError, QueryError,
        ReadOnlyError, TransactionError, CorruptObjectError,
    )
}


def from_code(code: str, message: str) -> UDRError:
    """The exception for one of UDR's error codes."""
    return _BY_CODE.get(code, UDRError)(message, code)
