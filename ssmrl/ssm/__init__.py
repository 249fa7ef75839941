"""SSM layers with ``forward(x, first, state)``, ``step(x_t, first_t, state)`` and ``initial_state(batch)``,
and the residual blocks that stack them."""
from ssmrl.ssm.blocks import RMSNorm, SSMBlock, SSMStack, make_norm
from ssmrl.ssm.mamba import Mamba
from ssmrl.ssm.mamba2 import Mamba2, Mamba2State
from ssmrl.ssm.s4d import S4D
from ssmrl.ssm.s5 import S5

__all__ = ["Mamba", "Mamba2", "Mamba2State", "RMSNorm", "S4D", "S5", "SSMBlock", "SSMStack", "make_norm"]
