"""Types of the compiled pump (workers/_pump.pyx)."""

def parse_one(data: bytes) -> int: ...
def scan_ends(data: bytes, start: int) -> tuple[int, int]: ...
def body_start(data: bytes) -> int: ...

class EngineFields:
    launched: int
    in_flight: int
    measured_end_ns: int
    users_stop_ns: int
    next_due_ns: int
    stopping: bool
    backstop: bool
    finished: bool

class ConnFields:
    busy: bool
    got: bool
    user: bool
    code: int
    seq: int
    intended: int
    sent: int
    fd: int

class Pump:
    reserve: int
    def __init__(self, engine: object) -> None: ...
    def pump(self) -> None: ...
    def arm(self, deadline_ns: int) -> None: ...
    def send(self, conn: object, seq: int, intended: int) -> None: ...
    def close(self) -> None: ...
