"Networks a user might bring, reached as `user_nets:<factory>` (the tests put this folder on the import path)."
import torch
from torch import nn


class _Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_a, self.bn, self.conv_b = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv_b(torch.relu(self.bn(self.conv_a(x)))))


def tiny_resnet(num_classes=10, in_channels=1):
    "Strided stem, two residual blocks with batch norm, global pooling, linear head."
    return nn.Sequential(nn.Conv2d(in_channels, 16, 3, stride=2, padding=1), nn.ReLU(), _Residual(16),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(), _Residual(32),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))


def rgb_only(num_classes=10):
    "A network that insists on 3-channel inputs."
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def not_a_network():
    return {"weights": []}
