"""Charts as PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path


def plot_losses(csv_path: str | Path, png_path: str | Path, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from pipeline.core.atomic import atomic_path

    df = pd.read_csv(csv_path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(df["step"], df["loss_d"], label="D loss")
    ax1.plot(df["step"], df["loss_g"], label="G loss")
    ax1.set_xlabel("step")
    ax1.legend()
    ax1.set_title(f"{title} losses".strip())
    ax2.plot(df["step"], df["d_real"], label="D(x)")
    ax2.plot(df["step"], df["d_fake"], label="D(G(z))")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step")
    ax2.legend()
    ax2.set_title("discriminator outputs")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(png_path)
