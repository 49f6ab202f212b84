"""Type stubs of the native module ``sendpromptly._native``."""

from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Dict, Generator, Iterable, List, Literal, Mapping, Optional, Union, final

_Seconds = Union[int, float, timedelta]
_Body = Union[bytes, bytearray, memoryview, str]
_Headers = Union[Mapping[str, Any], Iterable[Any]]
_Secrets = Union[str, Iterable[str]]
_Time = Union[datetime, str, int, float]
_Provider = Literal["stripe", "shopify", "custom"]
_Json = Dict[str, Any]
_Target = Union["RepairCallback", "ShopifyDelivery", Dict[str, Any]]
_EventSource = Union["ShopifyDelivery", Dict[str, Any]]

__all__ = [
    "__version__",
    "USER_AGENT",
    "Client",
    "AsyncClient",
    "SignalResponse",
    "RetryOn",
    "RetryConfig",
    "BackgroundConfig",
    "Background",
    "BackgroundStats",
    "DroppedSignal",
    "RepairCallback",
    "RepairCallbackEvent",
    "ShopifyDelivery",
    "Pending",
    "new_idempotency_key",
    "verify_repair_request",
    "event_ref",
    "stripe_verify",
    "shopify_verify",
]

__version__: str
USER_AGENT: str

def new_idempotency_key() -> str: ...
def event_ref(target: _Target) -> tuple[str, str, Optional[str]]: ...
def verify_repair_request(body: _Body, headers: _Headers, secret: _Secrets) -> RepairCallback: ...
def stripe_verify(
    payload: _Body, sig_header: Optional[Union[str, bytes]], secret: str, tolerance: Optional[int] = None
) -> _Json: ...
def shopify_verify(body: _Body, headers: _Headers, secret: _Secrets) -> ShopifyDelivery: ...

@final
class RetryOn:
    connection_errors: bool
    timeouts: bool
    too_many_requests: bool
    server_errors: bool
    def __new__(
        cls,
        *,
        connection_errors: bool = True,
        timeouts: bool = True,
        too_many_requests: bool = True,
        server_errors: bool = True,
    ) -> RetryOn: ...
    @staticmethod
    def nothing() -> RetryOn: ...
    @staticmethod
    def parse(text: str) -> RetryOn: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class RetryConfig:
    @property
    def max_attempts(self) -> int: ...
    @max_attempts.setter
    def max_attempts(self, value: int) -> None: ...
    @property
    def initial_backoff(self) -> float: ...
    @initial_backoff.setter
    def initial_backoff(self, value: _Seconds) -> None: ...
    @property
    def max_backoff(self) -> float: ...
    @max_backoff.setter
    def max_backoff(self, value: _Seconds) -> None: ...
    @property
    def jitter(self) -> float: ...
    @jitter.setter
    def jitter(self, value: float) -> None: ...
    @property
    def total_budget(self) -> float: ...
    @total_budget.setter
    def total_budget(self, value: _Seconds) -> None: ...
    @property
    def attempt_timeout(self) -> float: ...
    @attempt_timeout.setter
    def attempt_timeout(self, value: _Seconds) -> None: ...
    retry_on: RetryOn
    def __new__(
        cls,
        *,
        max_attempts: Optional[int] = None,
        initial_backoff: Optional[_Seconds] = None,
        max_backoff: Optional[_Seconds] = None,
        jitter: Optional[float] = None,
        total_budget: Optional[_Seconds] = None,
        attempt_timeout: Optional[_Seconds] = None,
        retry_on: Optional[RetryOn] = None,
    ) -> RetryConfig: ...
    @staticmethod
    def background() -> RetryConfig: ...
    @staticmethod
    def no_retries(timeout: _Seconds) -> RetryConfig: ...
    @staticmethod
    def from_env() -> RetryConfig: ...
    def validate(self) -> None: ...
    def backoff(self, retry: int, jitter_unit: float) -> float: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class BackgroundConfig:
    capacity: int
    concurrency: int
    retry: RetryConfig
    on_drop: Optional[Callable[[DroppedSignal], object]]
    def __new__(
        cls,
        *,
        capacity: Optional[int] = None,
        concurrency: Optional[int] = None,
        retry: Optional[RetryConfig] = None,
        on_drop: Optional[Callable[[DroppedSignal], object]] = None,
    ) -> BackgroundConfig: ...
    @staticmethod
    def from_env() -> BackgroundConfig: ...

@final
class SignalResponse:
    @property
    def event(self) -> _Json: ...
    @property
    def incident(self) -> Optional[_Json]: ...
    @property
    def status(self) -> int: ...
    @property
    def request_id(self) -> Optional[str]: ...
    @property
    def replayed(self) -> bool: ...
    @property
    def attempts(self) -> int: ...
    @property
    def idempotency_key(self) -> Optional[str]: ...
    @property
    def created(self) -> bool: ...

@final
class DroppedSignal:
    @property
    def signal(self) -> _Json: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def reason(self) -> Literal["queue_full", "closed", "invalid", "gave_up", "rejected", "shutdown"]: ...
    @property
    def error(self) -> Optional[BaseException]: ...

@final
class BackgroundStats:
    @property
    def enqueued(self) -> int: ...
    @property
    def delivered(self) -> int: ...
    @property
    def dropped_queue_full(self) -> int: ...
    @property
    def dropped_closed(self) -> int: ...
    @property
    def dropped_invalid(self) -> int: ...
    @property
    def gave_up(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def dropped_at_shutdown(self) -> int: ...
    @property
    def pending(self) -> int: ...
    @property
    def dropped(self) -> int: ...

@final
class RepairCallbackEvent:
    @property
    def provider(self) -> _Provider: ...
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def subject(self) -> Optional[str]: ...
    @property
    def effect(self) -> Optional[str]: ...
    @property
    def metadata(self) -> Optional[_Json]: ...
    def to_dict(self) -> _Json: ...

@final
class RepairCallback:
    @property
    def type(self) -> str: ...
    @property
    def reprocess_id(self) -> str: ...
    @property
    def incident_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def requested_at(self) -> str: ...
    @property
    def requested_by(self) -> str: ...
    @property
    def event(self) -> RepairCallbackEvent: ...
    def to_dict(self) -> _Json: ...

@final
class ShopifyDelivery:
    @property
    def topic(self) -> str: ...
    @property
    def sub_topic(self) -> Optional[str]: ...
    @property
    def shop_domain(self) -> str: ...
    @property
    def webhook_id(self) -> str: ...
    @property
    def event_id(self) -> Optional[str]: ...
    @property
    def triggered_at(self) -> Optional[str]: ...
    @property
    def api_version(self) -> str: ...
    @property
    def body(self) -> _Json: ...
    @property
    def dedupe_id(self) -> str: ...

@final
class Pending:
    def __await__(self) -> Generator[Any, None, Any]: ...

@final
class Background:
    def receipt(
        self,
        *,
        provider: _Provider,
        event_id: str,
        event_type: str,
        subject: Optional[str] = None,
        effect: Optional[str] = None,
        deadline_seconds: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        occurred_at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> bool: ...
    def receipt_for(
        self,
        event: _EventSource,
        *,
        subject: Optional[str] = None,
        effect: Optional[str] = None,
        deadline_seconds: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> bool: ...
    def result(
        self,
        *,
        provider: _Provider,
        event_id: str,
        status: Literal["success", "failure"],
        error: Optional[str] = None,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> bool: ...
    def success(
        self,
        *,
        provider: _Provider,
        event_id: str,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> bool: ...
    def failure(
        self,
        *,
        provider: _Provider,
        event_id: str,
        error: str,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> bool: ...
    def success_for(
        self, target: _Target, *, metadata: Optional[Mapping[str, Any]] = None, idempotency_key: Optional[str] = None
    ) -> bool: ...
    def failure_for(
        self,
        target: _Target,
        error: str,
        *,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> bool: ...
    def stats(self) -> BackgroundStats: ...
    def flush(self, timeout: Optional[_Seconds] = None) -> bool: ...
    def shutdown(self, timeout: Optional[_Seconds] = None) -> BackgroundStats: ...
    def flush_async(self, timeout: Optional[_Seconds] = None) -> Awaitable[bool]: ...
    def shutdown_async(self, timeout: Optional[_Seconds] = None) -> Awaitable[BackgroundStats]: ...

@final
class Client:
    def __new__(
        cls,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        retry: Optional[RetryConfig] = None,
        connect_timeout: Optional[_Seconds] = None,
    ) -> Client: ...
    @staticmethod
    def from_env() -> Client: ...
    @property
    def base_url(self) -> str: ...
    @property
    def retry(self) -> RetryConfig: ...
    def with_retry(self, retry: RetryConfig) -> Client: ...
    def background(self, config: Optional[BackgroundConfig] = None) -> Background: ...
    def receipt(
        self,
        *,
        provider: _Provider,
        event_id: str,
        event_type: str,
        subject: Optional[str] = None,
        effect: Optional[str] = None,
        deadline_seconds: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        occurred_at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> SignalResponse: ...
    def receipt_for(
        self,
        event: _EventSource,
        *,
        subject: Optional[str] = None,
        effect: Optional[str] = None,
        deadline_seconds: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> SignalResponse: ...
    def result(
        self,
        *,
        provider: _Provider,
        event_id: str,
        status: Literal["success", "failure"],
        error: Optional[str] = None,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> SignalResponse: ...
    def success(
        self,
        *,
        provider: _Provider,
        event_id: str,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> SignalResponse: ...
    def failure(
        self,
        *,
        provider: _Provider,
        event_id: str,
        error: str,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> SignalResponse: ...
    def success_for(
        self, target: _Target, *, metadata: Optional[Mapping[str, Any]] = None, idempotency_key: Optional[str] = None
    ) -> SignalResponse: ...
    def failure_for(
        self,
        target: _Target,
        error: str,
        *,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> SignalResponse: ...
    def get_event(self, provider: _Provider, event_id: str) -> _Json: ...
    def search_events(
        self,
        *,
        subject: Optional[str] = None,
        state: Optional[str] = None,
        event_id: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        livemode: Optional[bool] = None,
    ) -> _Json: ...
    def list_incidents(
        self,
        *,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        provider: Optional[_Provider] = None,
        event_type: Optional[str] = None,
        subject: Optional[str] = None,
        opened_after: Optional[_Time] = None,
        opened_before: Optional[_Time] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        livemode: Optional[bool] = None,
    ) -> _Json: ...
    def get_incident(self, incident_id: str) -> _Json: ...
    def reprocess(self, incident_id: str, *, note: Optional[str] = None) -> _Json: ...
    def resolve(self, incident_id: str, *, note: str) -> _Json: ...
    def create_proof_link(self, incident_id: str, *, expires_in: Optional[_Seconds] = None) -> _Json: ...
    def list_proof_links(self, incident_id: str) -> List[_Json]: ...
    def revoke_proof_link(self, proof_link_id: str) -> None: ...
    def plan_reprocess_batch(
        self,
        *,
        incident_ids: Optional[List[str]] = None,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        provider: Optional[_Provider] = None,
        event_type: Optional[str] = None,
        subject: Optional[str] = None,
        opened_after: Optional[_Time] = None,
        opened_before: Optional[_Time] = None,
        rate_per_second: Optional[float] = None,
        concurrency: Optional[int] = None,
        note: Optional[str] = None,
    ) -> _Json: ...
    def start_reprocess_batch(
        self,
        *,
        incident_ids: Optional[List[str]] = None,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        provider: Optional[_Provider] = None,
        event_type: Optional[str] = None,
        subject: Optional[str] = None,
        opened_after: Optional[_Time] = None,
        opened_before: Optional[_Time] = None,
        rate_per_second: Optional[float] = None,
        concurrency: Optional[int] = None,
        note: Optional[str] = None,
    ) -> _Json: ...
    def reprocess_batch(self, batch_id: str) -> _Json: ...
    def cancel_reprocess_batch(self, batch_id: str) -> _Json: ...
    def project(self) -> _Json: ...
    def update_project(self, **changes: Any) -> _Json: ...
    def rotate_signing_secret(self) -> _Json: ...
    def health(self) -> _Json: ...

@final
class AsyncClient:
    def __new__(
        cls,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        retry: Optional[RetryConfig] = None,
        connect_timeout: Optional[_Seconds] = None,
    ) -> AsyncClient: ...
    @staticmethod
    def from_env() -> AsyncClient: ...
    @property
    def base_url(self) -> str: ...
    @property
    def retry(self) -> RetryConfig: ...
    def with_retry(self, retry: RetryConfig) -> AsyncClient: ...
    def background(self, config: Optional[BackgroundConfig] = None) -> Background: ...
    def receipt(
        self,
        *,
        provider: _Provider,
        event_id: str,
        event_type: str,
        subject: Optional[str] = None,
        effect: Optional[str] = None,
        deadline_seconds: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        occurred_at: Optional[_Time] = None,
        idempotency_key: Optional[str] = None,
    ) -> Awaitable[SignalResponse]: ...
    def receipt_for(
        self,
        event: _EventSource,
        *,
        subject: Optional[str] = None,
        effect: Optional[str] = None,
        deadline_seconds: Optional[int] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Awaitable[SignalResponse]: ...
    def result(
        self,
        *,
        provider: _Provider,
        event_id: str,
        status: Literal["success", "failure"],
        error: Optional[str] = None,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Awaitable[SignalResponse]: ...
    def success(
        self,
        *,
        provider: _Provider,
        event_id: str,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Awaitable[SignalResponse]: ...
    def failure(
        self,
        *,
        provider: _Provider,
        event_id: str,
        error: str,
        reprocess_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Awaitable[SignalResponse]: ...
    def success_for(
        self, target: _Target, *, metadata: Optional[Mapping[str, Any]] = None, idempotency_key: Optional[str] = None
    ) -> Awaitable[SignalResponse]: ...
    def failure_for(
        self,
        target: _Target,
        error: str,
        *,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Awaitable[SignalResponse]: ...
    def get_event(self, provider: _Provider, event_id: str) -> Awaitable[_Json]: ...
    def search_events(
        self,
        *,
        subject: Optional[str] = None,
        state: Optional[str] = None,
        event_id: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        livemode: Optional[bool] = None,
    ) -> Awaitable[_Json]: ...
    def list_incidents(
        self,
        *,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        provider: Optional[_Provider] = None,
        event_type: Optional[str] = None,
        subject: Optional[str] = None,
        opened_after: Optional[_Time] = None,
        opened_before: Optional[_Time] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        livemode: Optional[bool] = None,
    ) -> Awaitable[_Json]: ...
    def get_incident(self, incident_id: str) -> Awaitable[_Json]: ...
    def reprocess(self, incident_id: str, *, note: Optional[str] = None) -> Awaitable[_Json]: ...
    def resolve(self, incident_id: str, *, note: str) -> Awaitable[_Json]: ...
    def create_proof_link(self, incident_id: str, *, expires_in: Optional[_Seconds] = None) -> Awaitable[_Json]: ...
    def list_proof_links(self, incident_id: str) -> Awaitable[List[_Json]]: ...
    def revoke_proof_link(self, proof_link_id: str) -> Awaitable[None]: ...
    def plan_reprocess_batch(
        self,
        *,
        incident_ids: Optional[List[str]] = None,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        provider: Optional[_Provider] = None,
        event_type: Optional[str] = None,
        subject: Optional[str] = None,
        opened_after: Optional[_Time] = None,
        opened_before: Optional[_Time] = None,
        rate_per_second: Optional[float] = None,
        concurrency: Optional[int] = None,
        note: Optional[str] = None,
    ) -> Awaitable[_Json]: ...
    def start_reprocess_batch(
        self,
        *,
        incident_ids: Optional[List[str]] = None,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        provider: Optional[_Provider] = None,
        event_type: Optional[str] = None,
        subject: Optional[str] = None,
        opened_after: Optional[_Time] = None,
        opened_before: Optional[_Time] = None,
        rate_per_second: Optional[float] = None,
        concurrency: Optional[int] = None,
        note: Optional[str] = None,
    ) -> Awaitable[_Json]: ...
    def reprocess_batch(self, batch_id: str) -> Awaitable[_Json]: ...
    def cancel_reprocess_batch(self, batch_id: str) -> Awaitable[_Json]: ...
    def project(self) -> Awaitable[_Json]: ...
    def update_project(self, **changes: Any) -> Awaitable[_Json]: ...
    def rotate_signing_secret(self) -> Awaitable[_Json]: ...
    def health(self) -> Awaitable[_Json]: ...
