"""A local Slack: the Web API emulator (`SlackEmulator`) and Slack's side of requests to the
bot (`SlackDriver`). Used by tests, benchmarks and `python -m emulator` (the sandbox)."""

from .driver import DriverResponse, SlackDriver, state_values
from .server import SlackEmulator, SlackError

__all__ = ["DriverResponse", "SlackDriver", "SlackEmulator", "SlackError", "state_values"]
