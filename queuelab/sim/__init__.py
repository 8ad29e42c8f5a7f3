"""SimPy models of the queue patterns, in virtual time, writing real ledgers."""

from queuelab.sim.model import SimResult, SimSpec, simulate

__all__ = ["SimResult", "SimSpec", "simulate"]
