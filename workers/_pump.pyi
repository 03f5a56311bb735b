"""Types of the compiled pump (workers/_pump.pyx)."""

def parse_one(data: bytes) -> int: ...

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
    def __init__(self, engine: object) -> None: ...
    def pump(self) -> None: ...
    def arm(self, deadline_ns: int) -> None: ...
    def send(self, conn: object, seq: int, intended: int) -> None: ...
    def close(self) -> None: ...
