"""OpenAI-shaped error responses.

Every error the simulator returns has the body OpenAI's API uses,
``{"error": {"message", "type", "param", "code"}}``, so the ``openai`` client
raises the same exception classes it raises against the real API.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    408: "timeout",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}


class ApiError(Exception):
    """An HTTP error to return to the client, with OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.error_type = error_type or _TYPES.get(status, "invalid_request_error")
        self.headers = dict(headers or {})

    def response(self, extra_headers: Mapping[str, str] | None = None) -> JSONResponse:
        """The error as a JSON response."""
        body = {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(
            body, status_code=self.status, headers={**self.headers, **(extra_headers or {})}
        )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, message, param=param, code=code)


def model_not_found(model: str) -> ApiError:
    """The 404 OpenAI and vLLM return for a model nobody serves."""
    return ApiError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )
