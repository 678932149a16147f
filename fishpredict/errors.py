"""The exception types users catch.

Every error fishpredict raises on purpose derives from :class:`FishpredictError`,
so ``except fishpredict.FishpredictError`` catches all of them. Each carries a
short machine-readable ``code`` (used as the JSON error code by the HTTP
contract) and an HTTP ``status`` that a server should answer with when the
error was caused by a client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fishpredict.app.messages import Response


class FishpredictError(Exception):
    """Base class of every error fishpredict raises on purpose."""

    code: str = "error"
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInputError(FishpredictError, ValueError):
    """A feature value or array is unusable: missing, non-numeric, NaN, inf,
    negative, or of the wrong shape."""

    code = "invalid_input"
    status = 400


class UnknownModelError(FishpredictError, KeyError):
    """No model is loaded under the requested name or k."""

    code = "unknown_model"
    status = 404

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.message


class ModelLoadError(FishpredictError):
    """A model artifact is missing, corrupt, not a model, or fails its check."""

    code = "model_load_failed"
    status = 500


class IntegrityError(ModelLoadError):
    """A model file's sha256 does not match its manifest (or there is no
    manifest and the caller did not pass ``trust=True``)."""

    code = "integrity_check_failed"


class DataError(FishpredictError):
    """A data file is missing, unreadable or has the wrong columns."""

    code = "bad_data"
    status = 400


class UnknownBackendError(FishpredictError, KeyError):
    """No serving backend is registered under that name."""

    code = "unknown_backend"
    status = 404

    def __str__(self) -> str:
        return self.message


class BackendUnavailableError(FishpredictError):
    """A backend is registered but its dependencies are not installed."""

    code = "backend_unavailable"
    status = 500


class PluginError(FishpredictError):
    """A plugin registered something wrong: a name another plugin claims, or an object
    that is not what the hook takes."""

    code = "plugin_error"


class ConfigError(FishpredictError):
    """A command-line option or configuration value is invalid."""

    code = "bad_config"
    status = 400


class ClusterError(FishpredictError):
    """A local cluster (replicas behind nginx) cannot be started, found or stopped."""

    code = "cluster_failed"
    status = 500


class ServerError(FishpredictError):
    """A server answered with an error, could not be reached, or did not start or stop
    cleanly (a server process this one started)."""

    code = "server_error"
    status = 502


class ModelRefusedError(InvalidInputError):
    """The estimator raised on the request's rows (a 400 carrying its cleaned message)."""

    code = "model_refused"


class ModelFailedError(FishpredictError):
    """The model itself failed on a request: it raised something other than a refusal of
    its input, or returned an output that is wrong (rows missing or added, the wrong
    shape) or cannot be serialised. A 500 naming the model; the server logs it once
    with its traceback."""

    code = "model_failed"
    status = 500


class SchedulerError(FishpredictError):
    """No Dask scheduler at the address given (or no client to run on)."""

    code = "scheduler_unavailable"
    status = 503


class ScoringError(FishpredictError):
    """A worker failed for a reason other than the data or the model (it died, say)."""

    code = "scoring_failed"
    status = 500


class Reply(Exception):
    """Raised inside a handler to answer at once with ``response`` (a
    :class:`fishpredict.app.messages.Response`): the way out of a route part-way."""

    def __init__(self, response: Response) -> None:
        self.response = response


class MetricsUnavailable(FishpredictError):
    """``/metrics`` was scraped where prometheus-client is not installed."""

    status = 501
    code = "metrics_unavailable"
