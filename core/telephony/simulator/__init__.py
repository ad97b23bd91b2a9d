"""A Twilio-compatible telephone network with scripted people (see README.md beside this file).

app = create_simulator_app(account_sid=..., auth_token=..., speed=60, scenario="drill.yaml")
sim = simulator_of(app)        # state, clock, introspection; sim.stop() when done
"""

from core.telephony.simulator.app import create_simulator_app, run_simulator, simulator_of
from core.telephony.simulator.clock import ManualClock, ScaledClock
from core.telephony.simulator.network import Simulator, SimulatorError
from core.telephony.simulator.scenario import Person, Scenario, ScenarioError
from core.telephony.simulator.transport import (
    InProcessTwilioHttpClient,
    RequestsTransport,
    Transport,
    WsgiTransport,
)

__all__ = [
    "InProcessTwilioHttpClient",
    "ManualClock",
    "Person",
    "RequestsTransport",
    "ScaledClock",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "SimulatorError",
    "Transport",
    "WsgiTransport",
    "create_simulator_app",
    "run_simulator",
    "simulator_of",
]
