import torch


class StandInModel:
    """What the memory evaluation (``agents.worldmodel.evaluate.score_batch``) needs of a world model besides
    ``observe``, ``imagine`` and ``reward``, which stand-ins for tests define: a CPU device, discrete actions,
    train/eval switches that do nothing and a decoder without images."""

    device, training = torch.device("cpu"), False
    cfg = type("Cfg", (), {"discrete_actions": True})()

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def decode(self, feat):
        return {}
