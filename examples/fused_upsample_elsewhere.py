"""Using vidgan's fused upsampling op in another project: a tiny image decoder.

    python examples/fused_upsample_elsewhere.py

Only `vidgan.ops` is imported; nothing else of vidgan (models, training) is needed.
Each stage is a 3x3 conv followed by one fused op that upsamples 2x with a [1, 3, 3, 1]
FIR filter, adds the bias and applies leaky ReLU * sqrt(2), in one pass.
"""
import torch
from torch import nn

from vidgan.ops import backend, fused_upsample, setup_filter


class UpStage(nn.Module):
    """[N, cin, H, W] -> [N, cout, 2H, 2W]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("fir", setup_filter([1, 3, 3, 1]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_upsample(self.conv(x), self.fir, self.bias, up=2, act="lrelu", clamp=256.0)


class TinyDecoder(nn.Module):
    """Latent [N, 64] -> image [N, 3, 32, 32]."""

    def __init__(self, z_dim: int = 64):
        super().__init__()
        self.fc = nn.Linear(z_dim, 128 * 4 * 4)
        self.stages = nn.Sequential(UpStage(128, 64), UpStage(64, 32), UpStage(32, 16))
        self.to_rgb = nn.Conv2d(16, 3, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, 128, 4, 4)  # [N, 128, 4, 4]
        x = self.stages(x)                   # [N, 16, 32, 32]
        return torch.tanh(self.to_rgb(x))    # [N, 3, 32, 32]


def main():
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = TinyDecoder().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    z = torch.randn(2, 64, device=device)
    target = torch.zeros(2, 3, 32, 32, device=device)
    for step in range(3):
        img = model(z)
        loss = (img - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.4f}")
    print(f"output {tuple(img.shape)}, bias grad norm {model.stages[0].bias.grad.norm().item():.4f}")
    print(f"backend: {backend(device)}")


if __name__ == "__main__":
    main()
