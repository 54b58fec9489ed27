"""Type stubs of cymongoose._mongoose, the C core of cymongoose (see API.md)."""
import os
from typing import (Any, Callable, Generator, Mapping, Optional, Protocol, Sequence, Union, final,
                    overload)

_Buffer = Union[bytes, bytearray, memoryview]
_BytesLike = Union[bytes, bytearray, memoryview, str]
_StrOrBytes = Union[str, bytes]
_Handler = Callable[["Connection", int, Any], Any]
_StrPath = Union[str, "os.PathLike[str]"]
_HeadersLike = Union[str, dict[str, str], list[tuple[str, str]]]
_ReplyHeaders = Union[
    Mapping[Union[str, bytes], Union[str, bytes]],
    Sequence[tuple[Union[str, bytes], Union[str, bytes]]],
]
_ErrorHandler = Callable[[BaseException], Any]
_Address = tuple[str, int, bool]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...
# MQTT 5 properties: {name or id: value}, or (key, value) pairs, or the
# dicts MqttMessage.properties() returns (see docs/mqtt.md).
_MqttProperties = Union[Mapping[Union[str, int], Any], Sequence[Any]]

# ----------------------------------------------------------------- constants
MG_EV_ERROR: int
MG_EV_OPEN: int
MG_EV_POLL: int
MG_EV_RESOLVE: int
MG_EV_CONNECT: int
MG_EV_ACCEPT: int
MG_EV_TLS_HS: int
MG_EV_READ: int
MG_EV_WRITE: int
MG_EV_CLOSE: int
MG_EV_HTTP_HDRS: int
MG_EV_HTTP_MSG: int
MG_EV_WS_OPEN: int
MG_EV_WS_MSG: int
MG_EV_WS_CTL: int
MG_EV_MQTT_CMD: int
MG_EV_MQTT_MSG: int
MG_EV_MQTT_OPEN: int
MG_EV_SNTP_TIME: int
MG_EV_WAKEUP: int
MG_EV_USER: int

WEBSOCKET_OP_TEXT: int
WEBSOCKET_OP_BINARY: int
WEBSOCKET_OP_CLOSE: int
WEBSOCKET_OP_PING: int
WEBSOCKET_OP_PONG: int

MG_LL_NONE: int
MG_LL_ERROR: int
MG_LL_INFO: int
MG_LL_DEBUG: int
MG_LL_VERBOSE: int

MQTT_PROP_TYPE_BYTE: int
MQTT_PROP_TYPE_STRING: int
MQTT_PROP_TYPE_STRING_PAIR: int
MQTT_PROP_TYPE_BINARY_DATA: int
MQTT_PROP_TYPE_VARIABLE_INT: int
MQTT_PROP_TYPE_INT: int
MQTT_PROP_TYPE_SHORT: int

# ------------------------------------------------------------------ messages
@final
class HttpMessage:
    """A view of an HTTP message, valid only during the handler call."""
    @property
    def method(self) -> str: ...
    @property
    def uri(self) -> str:
        """The request path as sent (percent-encoded), for routing; not for access checks."""
    @property
    def path(self) -> str:
        """The request path decoded and normalised: what serve_dir serves; use it for access checks."""
    @property
    def target(self) -> str:
        """The request-target exactly as sent, with the query."""
    @property
    def query(self) -> str: ...
    @property
    def proto(self) -> str: ...
    @property
    def body_bytes(self) -> bytes: ...
    @property
    def body_text(self) -> str: ...
    def header(self, name: str, default: Optional[str] = None) -> Optional[str]: ...
    def headers(self) -> list[tuple[str, str]]: ...
    def query_var(self, name: str) -> Optional[str]: ...
    def status(self) -> Optional[int]: ...
    def header_var(self, header_name: str, var_name: str) -> Optional[str]: ...
    def basic_auth(self) -> Optional[tuple[str, str]]: ...
    def __bool__(self) -> bool: ...

@final
class WsMessage:
    """A view of a WebSocket message or control frame, valid only during the handler call."""
    @property
    def data(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def flags(self) -> int: ...
    @property
    def op(self) -> int: ...
    @property
    def close_code(self) -> Optional[int]: ...
    @property
    def close_reason(self) -> str: ...
    def __bool__(self) -> bool: ...

@final
class MqttMessage:
    """A view of an MQTT message, valid only during the handler call."""
    @property
    def topic(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def cmd(self) -> int: ...
    @property
    def qos(self) -> int: ...
    @property
    def ack(self) -> int: ...
    @property
    def reason_code(self) -> int: ...
    @property
    def retain(self) -> bool: ...
    @property
    def dup(self) -> bool: ...
    @property
    def version(self) -> int: ...
    @property
    def session_present(self) -> bool: ...
    @property
    def client_id(self) -> str: ...
    def properties(self) -> list[dict[str, Any]]: ...
    def topics(self) -> list[tuple[str, int]]: ...
    def codes(self) -> list[int]: ...
    def __bool__(self) -> bool: ...

@final
class MqttSession:
    """Persistent MQTT session state kept across connections (mqtt_connect(session=...))."""
    def __new__(cls, *, max_inflight: int = 0, max_queued: int = 0) -> "MqttSession": ...
    @property
    def pending(self) -> int: ...
    @property
    def in_use(self) -> bool: ...
    @property
    def expired(self) -> int: ...

@final
class MqttBroker:
    """An MQTT broker on a Manager's loop (Manager.mqtt_broker())."""
    def listen(self, url: str, tls: Optional["TlsOpts"] = None) -> int: ...
    def publish(
        self, topic: str, payload: Union[bytes, bytearray, memoryview, str, None] = b"",
        qos: int = 0, retain: bool = False,
    ) -> int: ...
    def kick(self, client_id: str, reason: int = 152, drop_session: bool = False) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> "MqttBroker": ...
    def __exit__(self, *exc: Any) -> bool: ...
    @property
    def stats(self) -> dict[str, int]: ...
    @property
    def clients(self) -> dict[str, dict[str, Any]]: ...
    @property
    def listeners(self) -> list[tuple[str, int]]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def manager(self) -> Optional["Manager"]: ...

@final
class TlsOpts:
    ca: bytes
    cert: bytes
    key: bytes
    name: bytes
    skip_verification: bool
    handshake_timeout_ms: int
    def __init__(
        self,
        ca: Optional[Union[bytes, str]] = None,
        cert: Optional[Union[bytes, str]] = None,
        key: Optional[Union[bytes, str]] = None,
        name: Optional[Union[bytes, str]] = None,
        skip_verification: bool = False,
        *,
        handshake_timeout_ms: int = 0,
    ) -> None: ...

# --------------------------------------------------------------- connection
@final
class Connection:
    """A connection of a Manager; made by the manager, never directly.

    After CLOSE it is detached: methods raise RuntimeError("Connection has
    been closed") and properties read as defaults.
    """
    @property
    def id(self) -> int: ...
    @property
    def handler(self) -> Optional[_Handler]: ...
    @handler.setter
    def handler(self, value: Optional[_Handler]) -> None: ...
    def set_handler(self, handler: Optional[_Handler]) -> None: ...
    userdata: Any
    @property
    def is_listening(self) -> bool: ...
    @property
    def is_closing(self) -> bool: ...
    @property
    def is_client(self) -> bool: ...
    @property
    def is_tls(self) -> bool: ...
    @property
    def is_udp(self) -> bool: ...
    @property
    def is_websocket(self) -> bool: ...
    @property
    def is_readable(self) -> bool: ...
    @property
    def is_writable(self) -> bool: ...
    @property
    def is_full(self) -> bool: ...
    @property
    def is_send_full(self) -> bool: ...
    @property
    def is_draining(self) -> bool: ...
    @property
    def recv_len(self) -> int: ...
    @property
    def send_len(self) -> int: ...
    @property
    def recv_size(self) -> int: ...
    @property
    def send_size(self) -> int: ...
    recv_limit: int
    send_hwm: int
    @property
    def local_addr(self) -> Optional[_Address]: ...
    @property
    def remote_addr(self) -> Optional[_Address]: ...

    # core
    def send(self, data: _BytesLike) -> bool: ...
    def close(self) -> None: ...
    def drain(self) -> None: ...
    def http_end_keep_alive(self, idle_ms: Optional[int] = None) -> bool: ...
    def error(self, message: str) -> None: ...
    def recv_data(self, length: int = -1) -> bytes: ...
    def send_data(self, length: int = -1) -> bytes: ...
    def recv_consume(self, n: int = -1) -> None: ...
    # HTTP
    def reply(
        self,
        status_code: int,
        body: _BytesLike = b"",
        headers: Optional[_ReplyHeaders] = None,
    ) -> None: ...
    def reply_json(
        self, data: Any, status_code: int = 200, headers: Optional[_ReplyHeaders] = None
    ) -> None: ...
    def serve_dir(
        self,
        message: HttpMessage,
        root_dir: str,
        extra_headers: str = "",
        mime_types: str = "",
        page404: str = "",
        *,
        allow_hidden: bool = False,
        precompressed: bool = True,
    ) -> None: ...
    def serve_file(
        self, message: HttpMessage, path: str, extra_headers: str = "", mime_types: str = ""
    ) -> None: ...
    def http_chunk(self, data: _BytesLike) -> None: ...
    def http_sse(self, event_type: str, data: str) -> None: ...
    def http_basic_auth(self, username: str, password: str) -> None: ...
    # Streamed request bodies (from an HTTP_HDRS handler)
    def http_body_stream(self, message: HttpMessage, max_body: Optional[int] = None) -> Optional[int]: ...
    def http_body_read(self, size: int = 65536) -> bytes: ...
    def http_body_left(self) -> Optional[int]: ...
    def http_body_end(self) -> bool: ...
    # WebSocket
    def ws_upgrade(
        self,
        message: Union[HttpMessage, bytes],
        extra_headers: Optional[_HeadersLike] = None,
        *,
        compress: bool = False,
        max_message_size: Optional[int] = None,
    ) -> bool: ...
    def ws_send(self, data: _BytesLike, op: int = 1) -> int: ...
    def ws_close(self, code: int = 1000, reason: str = "") -> bool: ...
    # MQTT
    def mqtt_pub(
        self,
        topic: _StrOrBytes,
        message: _BytesLike,
        qos: int = 0,
        retain: bool = False,
        *,
        properties: Optional[_MqttProperties] = None,
        topic_alias: bool = False,
    ) -> int: ...
    def mqtt_sub(
        self,
        topic: _StrOrBytes,
        qos: int = 0,
        *,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_id: int = 0,
        properties: Optional[_MqttProperties] = None,
    ) -> int: ...
    def mqtt_unsub(
        self, topic: _StrOrBytes, *, properties: Optional[_MqttProperties] = None
    ) -> int: ...
    def mqtt_ping(self) -> None: ...
    def mqtt_pong(self) -> None: ...
    def mqtt_disconnect(
        self, reason_code: int = 0, *, properties: Optional[_MqttProperties] = None
    ) -> None: ...
    def mqtt_auth(
        self,
        reason_code: int = 0x18,
        data: Optional[_BytesLike] = None,
        *,
        method: Optional[str] = None,
        properties: Optional[_MqttProperties] = None,
    ) -> None: ...
    # DNS, SNTP, TLS
    def resolve(self, url: str) -> None: ...
    def resolve_cancel(self) -> None: ...
    def sntp_request(self) -> bool: ...
    def tls_init(self, opts: TlsOpts) -> None: ...
    def tls_free(self) -> None: ...

# -------------------------------------------------------------------- timer
@final
class Timer:
    """A timer made by Manager.timer_add()."""
    @property
    def active(self) -> bool: ...
    def cancel(self) -> None: ...

# ------------------------------------------------------------------ manager
@final
class Manager:
    """An event loop owning connections and timers."""
    def __init__(
        self,
        handler: Optional[_Handler] = None,
        enable_wakeup: bool = False,
        error_handler: Optional[_ErrorHandler] = None,
        *,
        dns: Optional[str] = None,
        dns_timeout_ms: int = 0,
        poll_events: bool = True,
        poll_interval_ms: int = 100,
    ) -> None: ...
    def __enter__(self) -> "Manager": ...
    def __exit__(self, *exc: Any) -> bool: ...
    handler: Optional[_Handler]
    error_handler: Optional[_ErrorHandler]
    recv_limit: int
    send_limit: int
    send_hwm: int
    wakeup_max_bytes: int
    wakeup_max_msgs: int
    max_conns: int
    poll_events: bool
    poll_interval_ms: int
    output_hook: Optional[Callable[[], Any]]
    def fileno(self) -> int: ...
    @property
    def connections(self) -> tuple[Connection, ...]: ...
    @property
    def wakeup_id(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def poll(self, timeout_ms: int = 0) -> None: ...
    def run(self, poll_ms: int = 100) -> None: ...
    def close(self) -> None: ...
    def listen(
        self,
        url: str,
        handler: Optional[_Handler] = None,
        *,
        http: Optional[bool] = None,
        http_max_body: Optional[int] = None,
        http_max_head: Optional[int] = None,
        http_header_timeout_ms: Optional[int] = None,
        http_idle_timeout_ms: Optional[int] = None,
        http_body_timeout_ms: Optional[int] = None,
        http_body_min_rate: Optional[int] = None,
        access_log: Union[int, Any, Callable[[str], Any], None] = None,
        access_log_format: Optional[str] = None,
        reuse_port: bool = False,
        fd: Union[int, _HasFileno, None] = None,
    ) -> Connection: ...
    def connect(
        self,
        url: str,
        handler: Optional[_Handler] = None,
        *,
        http: Optional[bool] = None,
        http_max_body: Optional[int] = None,
        http_max_head: Optional[int] = None,
        http_connect_timeout_ms: Optional[int] = None,
        http_response_timeout_ms: Optional[int] = None,
    ) -> Connection: ...
    def ws_connect(
        self,
        url: str,
        handler: Optional[_Handler] = None,
        *,
        compress: bool = False,
        extra_headers: Optional[_HeadersLike] = None,
        max_message_size: Optional[int] = None,
    ) -> Connection: ...
    def mqtt_connect(
        self,
        url: str,
        handler: Optional[_Handler] = None,
        client_id: str = "",
        username: str = "",
        password: str = "",
        clean_session: bool = True,
        keepalive: int = 60,
        *,
        version: int = 4,
        will_topic: Optional[str] = None,
        will_message: Optional[_BytesLike] = None,
        will_qos: int = 0,
        will_retain: bool = False,
        will_properties: Optional[_MqttProperties] = None,
        properties: Optional[_MqttProperties] = None,
        tls: Optional[TlsOpts] = None,
        max_packet_size: int = 0,
        max_inflight: int = 0,
        max_queued: int = 0,
        connect_timeout_ms: int = 0,
        session: Optional[MqttSession] = None,
        auth_method: Optional[str] = None,
        auth_data: Optional[_BytesLike] = None,
    ) -> Connection: ...
    def mqtt_listen(
        self,
        url: str,
        handler: Optional[_Handler] = None,
        *,
        max_packet_size: int = 0,
        connect_timeout_ms: int = 0,
    ) -> Connection: ...
    def mqtt_broker(
        self,
        url: Optional[str] = None,
        *,
        config: Optional[_StrPath] = None,
        tls: Optional["TlsOpts"] = None,
        allow_anonymous: Optional[bool] = None,
        password_file: Optional[_StrPath] = None,
        acl_file: Optional[_StrPath] = None,
        persistence: Optional[_StrPath] = None,
        fsync: Optional[str] = None,
        fsync_interval_ms: Optional[int] = None,
        compact_interval_s: Optional[int] = None,
        max_connections: Optional[int] = None,
        max_packet_size: Optional[int] = None,
        max_queued: Optional[int] = None,
        max_inflight: Optional[int] = None,
        max_retained: Optional[int] = None,
        max_retained_bytes: Optional[int] = None,
        max_subs_per_client: Optional[int] = None,
        max_session_expiry_s: Optional[int] = None,
        topic_alias_max: Optional[int] = None,
        topic_alias_out_max: Optional[int] = None,
        server_keepalive: Optional[int] = None,
        keepalive_factor: Optional[float] = None,
        connect_timeout_ms: Optional[int] = None,
        send_hwm: Optional[int] = None,
        slow_policy: Optional[str] = None,
        assign_client_ids: Optional[bool] = None,
        sys_interval_ms: Optional[int] = None,
        on_client: Optional[Callable[[str, bool, int, str], Any]] = None,
        on_message: Optional[Callable[[str, bytes, int, bool, Optional[str]], Any]] = None,
        authenticate: Optional[Callable[[str, str, Optional[bytes]], Union[bool, int]]] = None,
    ) -> "MqttBroker": ...
    def sntp_connect(self, url: str, handler: Optional[_Handler] = None) -> Connection: ...
    def timer_add(
        self, milliseconds: int, callback: Callable[[], Any], *, repeat: bool = False, run_now: bool = False
    ) -> Timer: ...
    def wakeup(self, connection_id: int, data: _BytesLike = b"") -> bool: ...
    def enable_wakeup(self) -> None: ...

# --------------------------------------------------------------- functions
def json_get(data: _BytesLike, path: _StrOrBytes, *, max_depth: int = 128) -> Optional[str]: ...
def json_get_num(
    data: _BytesLike, path: _StrOrBytes, default: Any = None, *, max_depth: int = 128
) -> Any: ...
def json_get_bool(
    data: _BytesLike, path: _StrOrBytes, default: Any = None, *, max_depth: int = 128
) -> Any: ...
def json_get_long(
    data: _BytesLike, path: _StrOrBytes, default: Any = 0, *, max_depth: int = 128
) -> Any: ...
def json_get_str(data: _BytesLike, path: _StrOrBytes, *, max_depth: int = 128) -> Optional[str]: ...
def url_encode(data: _BytesLike) -> str: ...
def url_port(url: _StrOrBytes) -> int: ...
def url_host(url: _StrOrBytes) -> str: ...
def url_user(url: _StrOrBytes) -> str: ...
def url_pass(url: _StrOrBytes) -> str: ...
def url_uri(url: _StrOrBytes) -> str: ...
def url_is_ssl(url: _StrOrBytes) -> bool: ...
@overload
def match(s: str, pattern: _StrOrBytes) -> tuple[bool, list[str]]: ...
@overload
def match(s: _Buffer, pattern: _StrOrBytes) -> tuple[bool, list[bytes]]: ...
def http_var(buf: _BytesLike, name: _StrOrBytes) -> Optional[str]: ...
def http_parse_multipart(
    body: _BytesLike, offset: int = 0
) -> tuple[int, Optional[dict[str, Any]]]: ...
def md5(data: _BytesLike) -> bytes: ...
def sha1(data: _BytesLike) -> bytes: ...
def sha256(data: _BytesLike) -> bytes: ...
def hmac_sha256(key: _BytesLike, data: _BytesLike) -> bytes: ...
def base64_encode(data: _BytesLike) -> str: ...
def base64_decode(data: _BytesLike) -> bytes: ...
def crc32(data: _BytesLike, initial: int = 0) -> int: ...
def millis() -> int: ...
def random_bytes(length: int) -> bytes: ...
def random_str(length: int) -> str: ...
def log_set(level: int) -> None: ...
def log_get() -> int: ...
def _log_set_sink(fn: Optional[Callable[[int, str, int, str], Any]], /) -> None: ...
def event_name(ev: int) -> str: ...

# --------------------------------------------------------------------- RPC
@final
class RpcReq:
    @property
    def frame(self) -> str: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def method(self) -> str: ...
    @property
    def params(self) -> Optional[str]: ...
    @property
    def is_notification(self) -> bool: ...
    @property
    def answered(self) -> bool: ...
    def ok(self, result_json: _BytesLike) -> None: ...
    def err(self, code: int, message: _StrOrBytes) -> None: ...

@final
class Rpc:
    def __new__(cls, *, max_depth: int = 128) -> "Rpc": ...
    def add(self, method: str, handler: Callable[[RpcReq], Any]) -> None: ...
    def process(self, frame: _BytesLike) -> str: ...
    @property
    def methods(self) -> list[str]: ...

# -------------------------------------------------------------------- WSGI
@final
class _WsgiEnvironBuilder:
    def __new__(cls, template: dict[str, Any], bytes_io: Any) -> "_WsgiEnvironBuilder": ...
    def environ(
        self,
        conn: Connection,
        message: HttpMessage,
        wsgi_input: Any = None,
        content_length: Optional[str] = None,
    ) -> dict[str, Any]: ...

@final
class _WsgiStart:
    def __new__(cls, response: Any) -> "_WsgiStart": ...
    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]: ...
    @property
    def status(self) -> Optional[int]: ...
    @property
    def headers(self) -> Optional[list[tuple[str, str]]]: ...

# -------------------------------------------------------------------- ASGI
@final
class _AsgiScopeBuilder:
    def __new__(cls, asgi: dict[str, str]) -> "_AsgiScopeBuilder": ...
    def http(
        self,
        message: HttpMessage,
        tls: bool,
        client: Optional[tuple[str, int]],
        server: Optional[tuple[str, int]],
        state: Any,
    ) -> dict[str, Any]: ...
    def websocket(
        self,
        message: HttpMessage,
        tls: bool,
        client: Optional[tuple[str, int]],
        server: Optional[tuple[str, int]],
        state: Any,
    ) -> dict[str, Any]: ...

@final
class _AsgiOp:
    def send(self, value: Any, /) -> Any: ...
    def __await__(self) -> Generator[Any, None, Any]: ...
    def __iter__(self) -> "_AsgiOp": ...
    def __next__(self) -> Any: ...

@final
class _AsgiChannel:
    @property
    def is_websocket(self) -> bool: ...
    @property
    def parked(self) -> bool: ...
    @property
    def in_task(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    def receive(self) -> _AsgiOp: ...
    def send(self, message: Any, /) -> _AsgiOp: ...
    def _finish(self, exc: Optional[BaseException], /) -> None: ...
    def cancel(self) -> bool: ...
    def shutdown(self) -> bool: ...

@final
class _AsgiConn: ...

@final
class _AsgiCore:
    def __new__(
        cls,
        app: Any,
        scopes: _AsgiScopeBuilder,
        hooks: Any,
        disconnected: type[BaseException],
        *,
        tls: Optional[TlsOpts] = None,
        state: Any = None,
        stream_window: int = 1048576,
        stream_body: int = 65536,
        max_body: int = 16777216,
    ) -> "_AsgiCore": ...
    def __call__(self, conn: Connection, ev: int, data: Any, /) -> None: ...
    state: Any
    @property
    def inputs(self) -> int: ...
    def start(self, loop: Any, /) -> None: ...
    def channels(self) -> list[_AsgiChannel]: ...
